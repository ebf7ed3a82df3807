"""Pull Jira Cloud issues with dlt's REST API source, as a dlt user would set it up.

Run by ``benchmarks/jira_pull.py`` inside dlt's own virtual environment (never momentos'), so it
imports nothing from momentos. Arguments come as one JSON object on the command line::

    {"url": "https://127.0.0.1:PORT", "user": "...", "password": "...", "ca": "/path/ca.pem",
     "projects": ["SD", "APP", "PMO"], "workdir": "/tmp/...", "complete": false,
     "max_pages": null}

The resource reads ``/rest/api/3/search/jql`` (Cloud removed ``/search``, CHANGE-2046) with
``fields=*all`` and ``expand=changelog``, 100 issues a page (the cap when fields are asked), and
pages with the response's ``nextPageToken`` (dlt ``JSONResponseCursorPaginator``, cursor in the
query string). Comments and history are what the search inlines (≤ 20 each on Cloud): dlt has no
Jira-specific logic to page the rest. With ``"complete": true`` the config also declares what a
dlt user adds to get *all* of them: child resources on ``/issue/{id}/comment`` and
``/issue/{id}/changelog`` (offset-paged, resolved from each parent issue's id). The pipeline
loads into DuckDB like dlt's quick start.

Prints one JSON line: issues extracted and the seconds spent extracting, normalizing and loading.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def main() -> None:
    args: dict[str, Any] = json.loads(sys.argv[1])
    # requests (under dlt's client) trusts this bundle for the sandbox's self-signed TLS.
    os.environ["REQUESTS_CA_BUNDLE"] = args["ca"]
    os.environ["DLT_DATA_DIR"] = os.path.join(args["workdir"], "dlt-data")
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    import dlt
    from dlt.sources.rest_api import rest_api_source

    projects = ", ".join(args["projects"])
    children: list[dict[str, Any]] = []
    if args.get("complete"):
        for name, path, selector, size in (
            ("issue_comments", "comment", "comments", 5000),
            ("issue_changelogs", "changelog", "values", 100),
        ):
            children.append({
                "name": name,
                "primary_key": "id",
                "write_disposition": "replace",
                "include_from_parent": ["id"],
                "endpoint": {
                    "path": f"rest/api/3/issue/{{resources.issues.id}}/{path}",
                    "data_selector": selector,
                    "paginator": {"type": "offset", "limit": size, "offset_param": "startAt",
                                  "limit_param": "maxResults", "total_path": "total"},
                },
            })
    source = rest_api_source({
        "client": {
            "base_url": args["url"] + "/",
            "auth": {"type": "http_basic", "username": args["user"], "password": args["password"]},
        },
        "resources": [{
            "name": "issues",
            "primary_key": "id",
            "write_disposition": "replace",
            "endpoint": {
                "path": "rest/api/3/search/jql",
                "params": {
                    "jql": f"project in ({projects}) ORDER BY updated ASC, key ASC",
                    "fields": "*all",
                    "expand": "changelog",
                    "maxResults": 100,
                },
                "data_selector": "issues",
                "paginator": {"type": "cursor", "cursor_path": "nextPageToken",
                              "cursor_param": "nextPageToken"},
            },
        }, *children],
    })
    if args.get("max_pages"):
        # A sample: the complete variant asks two requests per issue; 20,000 would take long.
        source.resources["issues"].add_limit(int(args["max_pages"]))
    pipeline = dlt.pipeline(
        pipeline_name="jira_bench", destination=dlt.destinations.duckdb(os.path.join(args["workdir"], "bench.duckdb")),
        dataset_name="jira_issues", pipelines_dir=os.path.join(args["workdir"], "pipelines"),
    )
    started = time.perf_counter()
    pipeline.extract(source)
    extracted = time.perf_counter()
    normalized_info = pipeline.normalize()
    normalized = time.perf_counter()
    pipeline.load()
    loaded = time.perf_counter()
    rows = normalized_info.row_counts if normalized_info is not None else {}
    print(json.dumps({
        "issues": int(rows.get("issues", 0)),
        "child_rows": {k: v for k, v in rows.items() if k.startswith(("issues__", "issue_"))},
        "extract_s": round(extracted - started, 3),
        "normalize_s": round(normalized - extracted, 3),
        "load_s": round(loaded - normalized, 3),
    }))


if __name__ == "__main__":
    main()
