/* Requester sentiment of many texts at once: ``sentiment.score_texts`` in C.
 *
 * The same steps as the Python code in sentiment.py, in the same order, with the same float
 * operations: lower-case the text, cut it into the tokens of ``_TOKEN_RE`` (letters
 * deaccented, apostrophes unified), guess its language from stop words when none is given,
 * and sum the lexicon's terms with negation, intensifiers, persistence, contrast, capitals
 * and exclamation marks. The lexicons, stop words and constants are Python objects handed
 * over once by ``configure``: the C code holds no word of its own. It walks the accent and
 * apostrophe maps more directly than Python (letters inside word tokens, apostrophes as
 * single-symbol tokens), which is the same only while those maps keep the shape that
 * ``sentiment._c_can_tokenize`` checks before the module is used; tests compare both paths.
 *
 * Only exact ``str`` texts are scored here: a subclass may override ``lower``, ``isspace`` or
 * ``!=``, so it comes back as ``None`` and sentiment.py scores it in Python.
 *
 * Python remains the reference and the fallback: without a compiler, or with
 * MOMENTOS_PURE_PYTHON=1, sentiment.py does the same work in Python. This exists because
 * scoring is a fifth of enrichment's time, most of it the interpreter's per-token overhead.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

/* Every float operation rounds as Python's do, one at a time: no fused multiply-add. GCC
 * ignores the standard pragma; setup.py passes it -ffp-contract=off and -fno-fast-math. */
#if defined(_MSC_VER) && !defined(__clang__)
#pragma fp_contract(off)
#elif defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

enum { TERM, NEG, INT, PERSIST, CONTRAST };

typedef struct {
    PyObject *lexicons;     /* dict: language -> (keys frozenset, words dict, phrases dict) */
    PyObject *mixed;        /* lexicons[""] */
    PyObject *stop_en;      /* frozenset */
    PyObject *stop_es;      /* frozenset */
    PyObject *letters;      /* dict: code point -> code point (accented letter -> plain) */
    PyObject *apostrophes;  /* dict: code point -> "'" */
    PyObject *punct;        /* frozenset of one-character strings */
    PyObject *nan;          /* math.nan, the float Python gives a text without words */
    double negation_scope, intensifier_scope, persistence_scope;
    double persistence_factor, caps_factor, exclamation_step, normalizer;
    int ready;
} Config;

static Config config;

static void clear_config(void)
{
    Py_CLEAR(config.lexicons);
    Py_CLEAR(config.mixed);
    Py_CLEAR(config.stop_en);
    Py_CLEAR(config.stop_es);
    Py_CLEAR(config.letters);
    Py_CLEAR(config.apostrophes);
    Py_CLEAR(config.punct);
    Py_CLEAR(config.nan);
    config.ready = 0;
}

/* An entry is (kind, first, second): an int and two numbers. */
static int valid_entry(PyObject *entry)
{
    return PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) == 3 &&
           PyLong_Check(PyTuple_GET_ITEM(entry, 0)) &&
           (PyFloat_Check(PyTuple_GET_ITEM(entry, 1)) || PyLong_Check(PyTuple_GET_ITEM(entry, 1))) &&
           (PyFloat_Check(PyTuple_GET_ITEM(entry, 2)) || PyLong_Check(PyTuple_GET_ITEM(entry, 2)));
}

/* A lexicon is (keys frozenset, words {str: entry}, phrases {str: ((rest tuple, entry), ...)}):
 * checked once here, so that scoring can read it without checks. */
static int valid_lexicon(PyObject *lexicon)
{
    if (!PyTuple_Check(lexicon) || PyTuple_GET_SIZE(lexicon) != 3 ||
        !PyFrozenSet_Check(PyTuple_GET_ITEM(lexicon, 0)) ||
        !PyDict_Check(PyTuple_GET_ITEM(lexicon, 1)) || !PyDict_Check(PyTuple_GET_ITEM(lexicon, 2)))
        return 0;
    PyObject *key, *value;
    Py_ssize_t at = 0;
    while (PyDict_Next(PyTuple_GET_ITEM(lexicon, 1), &at, &key, &value))
        if (!valid_entry(value))
            return 0;
    at = 0;
    while (PyDict_Next(PyTuple_GET_ITEM(lexicon, 2), &at, &key, &value)) {
        if (!PyTuple_Check(value))
            return 0;
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(value); k++) {
            PyObject *option = PyTuple_GET_ITEM(value, k);
            if (!PyTuple_Check(option) || PyTuple_GET_SIZE(option) != 2 ||
                !PyTuple_Check(PyTuple_GET_ITEM(option, 0)) ||
                !valid_entry(PyTuple_GET_ITEM(option, 1)))
                return 0;
        }
    }
    return 1;
}

static PyObject *configure(PyObject *self, PyObject *args)
{
    PyObject *lexicons, *stop_en, *stop_es, *letters, *apostrophes, *punct, *nan;
    double negation_scope, intensifier_scope, persistence_scope;
    double persistence_factor, caps_factor, exclamation_step, normalizer;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!O!O!ddddddd", &PyDict_Type, &lexicons,
                          &PyFrozenSet_Type, &stop_en, &PyFrozenSet_Type, &stop_es,
                          &PyDict_Type, &letters, &PyDict_Type, &apostrophes,
                          &PyFrozenSet_Type, &punct, &PyFloat_Type, &nan, &negation_scope,
                          &intensifier_scope, &persistence_scope, &persistence_factor,
                          &caps_factor, &exclamation_step, &normalizer))
        return NULL;
    PyObject *key, *value;
    Py_ssize_t at = 0;
    while (PyDict_Next(lexicons, &at, &key, &value))
        if (!valid_lexicon(value)) {
            PyErr_SetString(PyExc_TypeError, "each lexicon is (frozenset, words, phrases)");
            return NULL;
        }
    at = 0;
    while (PyDict_Next(letters, &at, &key, &value))
        if (!PyLong_Check(key) || !PyLong_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "letters map code points to code points");
            return NULL;
        }
    at = 0;
    while (PyDict_Next(apostrophes, &at, &key, &value))
        if (!PyLong_Check(key) || !PyUnicode_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "apostrophes map code points to str");
            return NULL;
        }
    PyObject *empty = PyUnicode_FromString("");
    if (!empty)
        return NULL;
    PyObject *mixed = PyDict_GetItemWithError(lexicons, empty);
    Py_DECREF(empty);
    if (!mixed) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "lexicons need a mixed one under \"\"");
        return NULL;
    }
    /* The new values are held before the old ones are let go. */
    Config old = config;
    Py_INCREF(lexicons); config.lexicons = lexicons;
    Py_INCREF(mixed); config.mixed = mixed;
    Py_INCREF(stop_en); config.stop_en = stop_en;
    Py_INCREF(stop_es); config.stop_es = stop_es;
    Py_INCREF(letters); config.letters = letters;
    Py_INCREF(apostrophes); config.apostrophes = apostrophes;
    Py_INCREF(punct); config.punct = punct;
    Py_INCREF(nan); config.nan = nan;
    Py_XDECREF(old.lexicons);
    Py_XDECREF(old.mixed);
    Py_XDECREF(old.stop_en);
    Py_XDECREF(old.stop_es);
    Py_XDECREF(old.letters);
    Py_XDECREF(old.apostrophes);
    Py_XDECREF(old.punct);
    Py_XDECREF(old.nan);
    config.negation_scope = negation_scope;
    config.intensifier_scope = intensifier_scope;
    config.persistence_scope = persistence_scope;
    config.persistence_factor = persistence_factor;
    config.caps_factor = caps_factor;
    config.exclamation_step = exclamation_step;
    config.normalizer = normalizer;
    config.ready = 1;
    Py_RETURN_NONE;
}

/* ``\w`` and ``\s`` of a ``str`` pattern in ``re`` (sre's SRE_UNI_IS_WORD / _IS_SPACE),
 * from a table for ASCII (filled from the same macros at import). */
static unsigned char ascii_class[128];
enum { WORD = 1, SPACE = 2 };

static void fill_ascii_class(void)
{
    for (Py_UCS4 c = 0; c < 128; c++)
        ascii_class[c] = (unsigned char)(((Py_UNICODE_ISALNUM(c) || c == '_') ? WORD : 0) |
                                         (Py_UNICODE_ISSPACE(c) ? SPACE : 0));
}

static inline int is_word(Py_UCS4 c)
{
    return c < 128 ? ascii_class[c] & WORD : Py_UNICODE_ISALNUM(c) || c == '_';
}

static inline int is_space(Py_UCS4 c)
{
    return c < 128 ? ascii_class[c] & SPACE : Py_UNICODE_ISSPACE(c);
}

/* The accent-free form of one code point, or the code point itself; -1 on error. */
static long plain_letter(Py_UCS4 c)
{
    if (c < 128)
        return (long)c;
    PyObject *key = PyLong_FromUnsignedLong(c);
    if (!key)
        return -1;
    PyObject *found = PyDict_GetItemWithError(config.letters, key);
    Py_DECREF(key);
    if (!found)
        return PyErr_Occurred() ? -1 : (long)c;
    return PyLong_AsLong(found);
}

/* A token: ``lower[start:end]``, its letters deaccented. */
static PyObject *word_token(PyObject *lower, int kind, const void *data, Py_ssize_t start,
                            Py_ssize_t end, int ascii)
{
    if (ascii)
        return PyUnicode_Substring(lower, start, end);
    int changed = 0;
    Py_ssize_t n = end - start;
    Py_UCS4 stack[64];
    Py_UCS4 *buffer = n <= 64 ? stack : PyMem_Malloc(n * sizeof(Py_UCS4));
    if (!buffer)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, start + i);
        long plain = plain_letter(c);
        if (plain < 0) {
            if (buffer != stack)
                PyMem_Free(buffer);
            return NULL;
        }
        if ((Py_UCS4)plain != c)
            changed = 1;
        buffer[i] = (Py_UCS4)plain;
    }
    PyObject *token;
    if (!changed) {
        token = PyUnicode_Substring(lower, start, end);
    } else {
        token = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buffer, n);
    }
    if (buffer != stack)
        PyMem_Free(buffer);
    return token;
}

/* A one-character token that is not part of a word: an apostrophe becomes "'". */
static PyObject *symbol_token(PyObject *lower, Py_ssize_t at, Py_UCS4 c)
{
    if (c >= 128) {
        PyObject *key = PyLong_FromUnsignedLong(c);
        if (!key)
            return NULL;
        PyObject *found = PyDict_GetItemWithError(config.apostrophes, key);
        Py_DECREF(key);
        if (found) {
            Py_INCREF(found);
            return found;
        }
        if (PyErr_Occurred())
            return NULL;
    }
    return PyUnicode_Substring(lower, at, at + 1);
}

/* The tokens of ``_TOKEN_RE.findall(lower)``, deaccented as ``_deaccented_tokens`` does:
 * r"[\w']++|[:;]-?(?:[()]|[dp](?!\w))|[^\w\s]". */
static PyObject *tokenize(PyObject *lower)
{
    int kind = PyUnicode_KIND(lower);
    const void *data = PyUnicode_DATA(lower);
    Py_ssize_t n = PyUnicode_GET_LENGTH(lower);
    int ascii = PyUnicode_IS_ASCII(lower);
    PyObject *tokens = PyList_New(0);
    if (!tokens)
        return NULL;
    Py_ssize_t i = 0;
    while (i < n) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        PyObject *token = NULL;
        if (is_word(c) || c == '\'') {
            Py_ssize_t j = i + 1;
            while (j < n) {
                Py_UCS4 d = PyUnicode_READ(kind, data, j);
                if (!(is_word(d) || d == '\''))
                    break;
                j++;
            }
            token = word_token(lower, kind, data, i, j, ascii);
            i = j;
        } else if (c == ':' || c == ';') {
            Py_ssize_t j = i + 1;
            if (j < n && PyUnicode_READ(kind, data, j) == '-')
                j++;
            Py_ssize_t stop = -1;
            if (j < n) {
                Py_UCS4 d = PyUnicode_READ(kind, data, j);
                if (d == '(' || d == ')')
                    stop = j + 1;
                else if ((d == 'd' || d == 'p') &&
                         !(j + 1 < n && is_word(PyUnicode_READ(kind, data, j + 1))))
                    stop = j + 1;
            }
            if (stop > 0) {
                token = PyUnicode_Substring(lower, i, stop);
                i = stop;
            } else {
                token = PyUnicode_Substring(lower, i, i + 1);
                i++;
            }
        } else if (!is_space(c)) {
            token = symbol_token(lower, i, c);
            i++;
        } else {
            i++;
            continue;
        }
        if (!token || PyList_Append(tokens, token) < 0) {
            Py_XDECREF(token);
            Py_DECREF(tokens);
            return NULL;
        }
        Py_DECREF(token);
    }
    return tokens;
}

/* ``len(stop.intersection(tokens))``: distinct tokens that are stop words; -1 on error. */
static Py_ssize_t distinct_in(PyObject *stop, PyObject *tokens)
{
    Py_ssize_t n = PyList_GET_SIZE(tokens);
    PyObject *seen = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *token = PyList_GET_ITEM(tokens, i);
        int in = PySet_Contains(stop, token);
        if (in < 0)
            goto error;
        if (in) {
            if (!seen && !(seen = PySet_New(NULL)))
                return -1;
            if (PySet_Add(seen, token) < 0)
                goto error;
        }
    }
    Py_ssize_t count = seen ? PySet_GET_SIZE(seen) : 0;
    Py_XDECREF(seen);
    return count;
error:
    Py_XDECREF(seen);
    return -1;
}

/* ``_detect_tokens``: the lexicon of the language with more distinct stop words, else the
 * mixed one. Borrowed reference; NULL on error. */
static PyObject *detected_lexicon(PyObject *tokens)
{
    Py_ssize_t english = distinct_in(config.stop_en, tokens);
    if (english < 0)
        return NULL;
    Py_ssize_t spanish = distinct_in(config.stop_es, tokens);
    if (spanish < 0)
        return NULL;
    const char *name = spanish > english ? "es" : english > spanish ? "en" : "";
    PyObject *key = PyUnicode_FromString(name);
    if (!key)
        return NULL;
    PyObject *lexicon = PyDict_GetItemWithError(config.lexicons, key);
    Py_DECREF(key);
    if (!lexicon && !PyErr_Occurred())
        lexicon = config.mixed;
    return lexicon;
}

/* ``_clear``: no punctuation token strictly between two positions; -1 on error. */
static int clear_between(PyObject *tokens, Py_ssize_t start, Py_ssize_t end)
{
    for (Py_ssize_t k = start + 1; k < end; k++) {
        int in = PySet_Contains(config.punct, PyList_GET_ITEM(tokens, k));
        if (in)
            return in < 0 ? -1 : 0;
    }
    return 1;
}

/* ``tuple(tokens[i + 1 : i + 1 + len(rest)]) == rest``; -1 on error. */
static int phrase_follows(PyObject *tokens, Py_ssize_t i, PyObject *rest)
{
    Py_ssize_t length = PyTuple_GET_SIZE(rest);
    if (i + 1 + length > PyList_GET_SIZE(tokens))
        return 0;
    for (Py_ssize_t k = 0; k < length; k++) {
        int equal = PyObject_RichCompareBool(PyList_GET_ITEM(tokens, i + 1 + k),
                                             PyTuple_GET_ITEM(rest, k), Py_EQ);
        if (equal <= 0)
            return equal;
    }
    return 1;
}

/* ``token.upper() in shouted``; -1 on error. */
static int shouted_in(PyObject *token, PyObject *shouted)
{
    PyObject *upper = PyObject_CallMethod(token, "upper", NULL);
    if (!upper)
        return -1;
    int in = PySequence_Contains(shouted, upper);
    Py_DECREF(upper);
    return in;
}

/* ``_score_tokens(tokens, shouted, lexicon)``: ``shouted`` is NULL when the text has no
 * capitals. Returns 0 and sets ``*out``, or -1 on error. */
static int score_tokens(PyObject *tokens, PyObject *shouted, PyObject *lexicon, double *out)
{
    PyObject *keys = PyTuple_GET_ITEM(lexicon, 0);
    PyObject *words = PyTuple_GET_ITEM(lexicon, 1);
    PyObject *phrases = PyTuple_GET_ITEM(lexicon, 2);
    Py_ssize_t n = PyList_GET_SIZE(tokens);
    double total = 0.0, before_contrast = 0.0, after_factor = 1.0;
    double negator_own = 0.0, multiplier = 1.0;
    Py_ssize_t negator_at = -100, intensifier_at = -100, persistence_at = -100;
    Py_ssize_t skip_until = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i < skip_until)
            continue;
        PyObject *token = PyList_GET_ITEM(tokens, i);
        int in = PySet_Contains(keys, token);
        if (in < 0)
            return -1;
        if (!in)
            continue;
        PyObject *entry = NULL;
        Py_ssize_t span = 1;
        PyObject *options = PyDict_GetItemWithError(phrases, token);
        if (!options && PyErr_Occurred())
            return -1;
        if (options && PyTuple_GET_SIZE(options)) {
            Py_ssize_t count = PyTuple_GET_SIZE(options);
            for (Py_ssize_t k = 0; k < count; k++) {
                PyObject *option = PyTuple_GET_ITEM(options, k);
                PyObject *rest = PyTuple_GET_ITEM(option, 0);
                int follows = phrase_follows(tokens, i, rest);
                if (follows < 0)
                    return -1;
                if (follows) {
                    entry = PyTuple_GET_ITEM(option, 1);
                    span = PyTuple_GET_SIZE(rest) + 1;
                    break;
                }
            }
        }
        if (!entry) {
            entry = PyDict_GetItemWithError(words, token);
            if (!entry) {
                if (PyErr_Occurred())
                    return -1;
                continue;
            }
        }
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(entry, 0));
        if (kind == -1 && PyErr_Occurred())
            return -1;
        double first = PyFloat_AsDouble(PyTuple_GET_ITEM(entry, 1));
        if (first == -1.0 && PyErr_Occurred())
            return -1;
        double second = PyFloat_AsDouble(PyTuple_GET_ITEM(entry, 2));
        if (second == -1.0 && PyErr_Occurred())
            return -1;
        Py_ssize_t last = i + span - 1;
        skip_until = last + 1;
        if (kind == TERM) {
            double value = first;
            int clear;
            if ((double)(i - negator_at) <= config.negation_scope) {
                if ((clear = clear_between(tokens, negator_at, i)) < 0)
                    return -1;
                if (clear) {
                    value = second;
                    total -= negator_own;
                    negator_own = 0.0;
                }
            }
            if (!value)
                continue;
            if ((double)(i - intensifier_at) <= config.intensifier_scope) {
                if ((clear = clear_between(tokens, intensifier_at, i)) < 0)
                    return -1;
                if (clear)
                    value *= multiplier;
            }
            if (value < 0 && (double)(i - persistence_at) <= config.persistence_scope) {
                if ((clear = clear_between(tokens, persistence_at, i)) < 0)
                    return -1;
                if (clear)
                    value *= config.persistence_factor;
            }
            if (shouted && PyUnicode_GET_LENGTH(token) >= 3) {
                int loud = shouted_in(token, shouted);
                if (loud < 0)
                    return -1;
                if (loud)
                    value *= config.caps_factor;
            }
            total += value;
        } else if (kind == NEG) {
            negator_at = last;
            negator_own = first;
            total += first;
        } else if (kind == INT) {
            intensifier_at = last;
            multiplier = first;
        } else if (kind == PERSIST) {
            persistence_at = last;
        } else {
            before_contrast = (before_contrast + total) * 0.5;
            total = 0.0;
            after_factor = 1.5;
        }
    }
    *out = before_contrast + total * after_factor;
    return 0;
}

/* ``str.isspace``: true when every character is white space (and there is one). */
static int all_space(PyObject *text)
{
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!is_space(PyUnicode_READ(kind, data, i)))
            return 0;
    return n > 0;
}

/* The score of one exact ``str``; 0, or -1 on error. */
static int score_str(PyObject *text, PyObject *language, double *out)
{
    PyObject *lower = PyObject_CallMethod(text, "lower", NULL);
    if (!lower)
        return -1;
    if (!PyUnicode_Check(lower)) {
        PyErr_SetString(PyExc_TypeError, "str.lower() gave something else");
        Py_DECREF(lower);
        return -1;
    }
    PyObject *tokens = tokenize(lower);
    if (!tokens) {
        Py_DECREF(lower);
        return -1;
    }
    double total;
    /* Held for the whole scoring: nothing here may let it go, even a configure() call. */
    PyObject *lexicon = NULL;
    int named = language ? PyObject_IsTrue(language) : 0;
    if (named < 0)
        goto error;
    if (named) {
        lexicon = PyDict_GetItemWithError(config.lexicons, language);
        if (!lexicon) {
            if (PyErr_Occurred())
                goto error;
            lexicon = config.mixed;
        }
    } else if (!(lexicon = detected_lexicon(tokens))) {
        goto error;
    }
    Py_INCREF(lexicon);
    int loud = PyUnicode_Compare(text, lower);
    if (loud == -1 && PyErr_Occurred()) {
        Py_DECREF(lexicon);
        goto error;
    }
    int failed = score_tokens(tokens, loud ? text : NULL, lexicon, &total) < 0;
    Py_DECREF(lexicon);
    if (failed)
        goto error;
    if (total) {
        /* min(lower.count("!"), 4) */
        int kind = PyUnicode_KIND(lower);
        const void *data = PyUnicode_DATA(lower);
        Py_ssize_t n = PyUnicode_GET_LENGTH(lower), bangs = 0;
        for (Py_ssize_t i = 0; i < n && bangs < 4; i++)
            if (PyUnicode_READ(kind, data, i) == '!')
                bangs++;
        total += copysign(bangs * config.exclamation_step, total);
    }
    *out = total / sqrt(total * total + config.normalizer);
    Py_DECREF(tokens);
    Py_DECREF(lower);
    return 0;
error:
    Py_DECREF(tokens);
    Py_DECREF(lower);
    return -1;
}

/* ``score_texts``' result for one text (a new reference): a float, ``math.nan`` when there is
 * no text, ``None`` for a ``str`` subclass (sentiment.py scores it); NULL on error. */
static PyObject *score_one(PyObject *text, PyObject *language)
{
    if (!PyUnicode_Check(text)) {
        Py_INCREF(config.nan);
        return config.nan;
    }
    if (!PyUnicode_CheckExact(text))
        Py_RETURN_NONE;
    if (PyUnicode_GET_LENGTH(text) == 0 || all_space(text)) {
        Py_INCREF(config.nan);
        return config.nan;
    }
    double value;
    if (score_str(text, language, &value) < 0)
        return NULL;
    return PyFloat_FromDouble(value);
}

/* ``[score(text, language) for text, language in zip(texts, languages)]``, iterated as ``zip``
 * does (texts first), holding each item while it is scored: the caller's containers may change
 * meanwhile (a finalizer, another thread) without pulling an item from under the scorer. */
static PyObject *score_texts(PyObject *self, PyObject *args)
{
    PyObject *texts, *languages;
    if (!PyArg_ParseTuple(args, "OO", &texts, &languages))
        return NULL;
    if (!config.ready) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
    PyObject *text_iter = PyObject_GetIter(texts);
    if (!text_iter)
        return NULL;
    PyObject *language_iter = NULL;
    if (languages != Py_None && !(language_iter = PyObject_GetIter(languages))) {
        Py_DECREF(text_iter);
        return NULL;
    }
    Py_ssize_t deferred = 0;
    PyObject *result = PyList_New(0);
    if (!result)
        goto error;
    for (;;) {
        PyObject *text = PyIter_Next(text_iter);
        if (!text)
            break;
        PyObject *language = NULL;
        if (language_iter && !(language = PyIter_Next(language_iter))) {
            Py_DECREF(text);
            break;
        }
        PyObject *score = score_one(text, language);
        Py_DECREF(text);
        Py_XDECREF(language);
        if (!score || PyList_Append(result, score) < 0) {
            Py_XDECREF(score);
            goto error;
        }
        deferred += score == Py_None;
        Py_DECREF(score);
    }
    if (PyErr_Occurred())
        goto error;
    Py_DECREF(text_iter);
    Py_XDECREF(language_iter);
    return Py_BuildValue("(Nn)", result, deferred);
error:
    Py_XDECREF(result);
    Py_DECREF(text_iter);
    Py_XDECREF(language_iter);
    return NULL;
}

static PyObject *tokens_of(PyObject *self, PyObject *lower)
{
    if (!PyUnicode_Check(lower)) {
        PyErr_SetString(PyExc_TypeError, "a str, please");
        return NULL;
    }
    if (!config.ready) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
    return tokenize(lower);
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(lexicons, stop_en, stop_es, letters, apostrophes, punct, nan, negation_scope, "
     "intensifier_scope, persistence_scope, persistence_factor, caps_factor, "
     "exclamation_step, normalizer): what score_texts knows."},
    {"score_texts", score_texts, METH_VARARGS,
     "score_texts(texts, languages or None) -> (scores, deferred): a list of floats (NaN where "
     "there is no text, None for a str subclass) and how many are None."},
    {"tokens", tokens_of, METH_O,
     "tokens(lower) -> the deaccented tokens of a lower-case text, as the scorer sees them."},
    {NULL, NULL, 0, NULL},
};

static void free_module(void *module) { clear_config(); }

static struct PyModuleDef definition = {
    PyModuleDef_HEAD_INIT, "_csentiment", "Requester sentiment in C (see sentiment.py).", -1,
    methods, NULL, NULL, NULL, free_module,
};

PyMODINIT_FUNC PyInit__csentiment(void)
{
    fill_ascii_class();
    return PyModule_Create(&definition);
}
