from momentos.cli import main

main()
