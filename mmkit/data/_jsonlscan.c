/* mmkit.data._jsonlscan: the compiled fast path of the mmkit JSONL reader.

Why it exists: the stdlib JSON parser alone reads the real Binance USD-M recording at
about 78k lines/s (a book delta there carries ~45 levels of decimal strings), so no
amount of Python around it reaches the data layer's 300k events/s target.  This module
parses the *canonical* line shapes that mmkit's own writer emits (sorted keys, compact
separators; DESIGN.md section 5) in one pass, converts the decimal strings to integer
ticks/lots exactly, and builds the event through the fast builders of core.events.

Contract (what makes it safe to have two parsers): Scanner.scan(line) returns
  - an event, for a canonical trade, quote, book_delta or book_snapshot line whose every
    value is a plain decimal string on its instrument's grid, whose sizes are >= 0 and
    whose integers fit in 63 bits;
  - a str (the symbol), when the line is canonical but its symbol is not registered yet:
    the caller resolves the instrument, calls add(), and scans again;
  - None for anything else (other shapes, whitespace, escapes, non-ASCII text, off-grid or
    negative values, huge numbers, an unsupported instrument): the caller's general
    json.loads path then produces the event or the exact error message.
It never raises for bad input and never guesses; per-symbol time order stays with the
caller.  tests/data/test_jsonl_compiled.py checks that both paths give identical events. */

#include "../_ccommon.h"
#include <stdint.h>
#include <string.h>

#define MAX_DIGITS 18 /* 10^18 < 2^63: any value with <= 18 significant digits fits */

typedef struct {
    char *name;       /* symbol bytes (ASCII), owned */
    Py_ssize_t len;
    PyObject *symbol; /* the str put into events */
    int supported;    /* 0: scales out of range, always fall back */
    int64_t px_mant, qty_mant;
    int px_places, qty_places;
} Sym;

typedef struct {
    const char *p;
    Py_ssize_t n;
} Span;

typedef struct {
    PyObject_HEAD
    PyObject *make_snapshot, *make_delta, *make_trade, *make_quote;
    PyObject *buy, *sell;
    Sym *syms;
    Py_ssize_t nsyms, capsyms;
    Py_ssize_t last; /* index of the last symbol hit, or -1 */
    Span *spans;     /* level text spans of the current line: px, qty, px, qty, ... */
    Py_ssize_t capspans;
} Scanner;

/* ------------------------------------------------------------------ lexing helpers */

static inline int lit(const char **pp, const char *end, const char *s, size_t n) {
    if ((size_t)(end - *pp) < n || memcmp(*pp, s, n) != 0) return 0;
    *pp += n;
    return 1;
}
#define LIT(pp, end, s) lit(pp, end, s, sizeof(s) - 1)

/* After an opening quote: the string body up to the closing quote (no escapes, no controls). */
static inline int str_body(const char **pp, const char *end, Span *out) {
    const char *p = *pp, *s = p;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            out->p = s;
            out->n = p - s;
            *pp = p + 1;
            return 1;
        }
        if (c == '\\' || c < 0x20) return 0;
        p++;
    }
    return 0;
}

/* A JSON integer 0|[1-9][0-9]* below 2^63 (nanosecond times have 19 digits). */
static inline int json_int(const char **pp, const char *end, int64_t *out) {
    const char *p = *pp;
    if (p >= end || *p < '0' || *p > '9') return 0;
    if (*p == '0') {
        *out = 0;
        *pp = p + 1;
        return 1;
    }
    uint64_t v = 0;
    int n = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (++n > MAX_DIGITS + 1) return 0; /* 20+ digits: past 2^64 */
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    if (v > (uint64_t)INT64_MAX) return 0;
    *out = (int64_t)v;
    *pp = p;
    return 1;
}

static const int64_t POW10[MAX_DIGITS + 1] = {
    1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL, 10000000LL, 100000000LL, 1000000000LL,
    10000000000LL, 100000000000LL, 1000000000000LL, 10000000000000LL, 100000000000000LL,
    1000000000000000LL, 10000000000000000LL, 100000000000000000LL, 1000000000000000000LL};

/* Exact text / (mant * 10^-places) for a plain decimal string -?[0-9]+(\.[0-9]+)?, as
   core.instruments.plain_to_units; 0 (fall back) when not plain, off the grid, negative
   where not allowed, or too large. */
static int to_units(Span s, int64_t mant, int places, int allow_neg, int64_t *out) {
    const char *p = s.p, *end = s.p + s.n;
    int neg = 0;
    if (p < end && *p == '-') {
        if (!allow_neg) return 0;
        neg = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9') return 0;
    int64_t v = 0;
    int sig = 0; /* significant digits accumulated so far (leading zeros do not count) */
    while (p < end && *p >= '0' && *p <= '9') {
        if (v || *p != '0') {
            if (++sig + places > MAX_DIGITS) return 0;
            v = v * 10 + (*p - '0');
        }
        p++;
    }
    int frac = 0;
    if (p < end) {
        if (*p != '.') return 0;
        p++;
        if (p >= end) return 0;
        while (p < end) {
            char c = *p++;
            if (c < '0' || c > '9') return 0;
            if (frac < places) {
                v = v * 10 + (c - '0');
                frac++;
            } else if (c != '0') {
                return 0; /* off the decimal grid: the general path reports it */
            }
        }
    }
    v *= POW10[places - frac];
    if (mant != 1) {
        if (v % mant) return 0;
        v /= mant;
    }
    *out = neg ? -v : v;
    return 1;
}

/* The trailing `}` and optional whitespace up to the end of the line. */
static inline int line_end(const char *p, const char *end) {
    if (p >= end || *p != '}') return 0;
    for (p++; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') return 0;
    return 1;
}

/* `"recv_ts":N,"symbol":"S","ts":N}` - the tail every canonical event line shares. */
static int tail(const char **pp, const char *end, int64_t *rts, Span *sym, int64_t *ts) {
    if (!LIT(pp, end, "\"recv_ts\":") || !json_int(pp, end, rts)) return 0;
    if (!LIT(pp, end, ",\"symbol\":\"") || !str_body(pp, end, sym) || sym->n == 0) return 0;
    if (!LIT(pp, end, ",\"ts\":") || !json_int(pp, end, ts)) return 0;
    return line_end(*pp, end);
}

/* ------------------------------------------------------------------ symbols */

static Sym *find_sym(Scanner *self, Span name) {
    if (self->last >= 0) {
        Sym *s = &self->syms[self->last];
        if (s->len == name.n && memcmp(s->name, name.p, name.n) == 0) return s;
    }
    for (Py_ssize_t i = 0; i < self->nsyms; i++) {
        Sym *s = &self->syms[i];
        if (s->len == name.n && memcmp(s->name, name.p, name.n) == 0) {
            self->last = i;
            return s;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ building */


/* Level spans [start, start + 2*count) -> tuple of (px, qty) int tuples; NULL+no error
   when a value falls back, NULL+error on memory failure. */
static PyObject *levels_tuple(Scanner *self, Sym *sym, Py_ssize_t start, Py_ssize_t count, int *fallback) {
    PyObject *tup = PyTuple_New(count);
    if (tup == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        int64_t px, qty;
        if (!to_units(self->spans[start + 2 * i], sym->px_mant, sym->px_places, 1, &px) ||
            !to_units(self->spans[start + 2 * i + 1], sym->qty_mant, sym->qty_places, 0, &qty)) {
            Py_DECREF(tup);
            *fallback = 1;
            return NULL;
        }
        PyObject *a = PyLong_FromLongLong(px), *b = PyLong_FromLongLong(qty);
        PyObject *lv = (a && b) ? PyTuple_Pack(2, a, b) : NULL;
        Py_XDECREF(a);
        Py_XDECREF(b);
        if (lv == NULL) {
            Py_DECREF(tup);
            return NULL;
        }
        PyTuple_SET_ITEM(tup, i, lv);
    }
    return tup;
}

static int push_span(Scanner *self, Py_ssize_t *n, Span s) {
    if (*n >= self->capspans) {
        Py_ssize_t cap = self->capspans ? self->capspans * 2 : 256;
        Span *grown = PyMem_Realloc(self->spans, cap * sizeof(Span));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->spans = grown;
        self->capspans = cap;
    }
    self->spans[(*n)++] = s;
    return 0;
}

/* `[["px","qty"],...]` -> spans appended; 1 ok, 0 not canonical, -1 error. */
static int level_list(Scanner *self, const char **pp, const char *end, Py_ssize_t *n) {
    if (!LIT(pp, end, "[")) return 0;
    if (LIT(pp, end, "]")) return 1;
    for (;;) {
        Span px, qty;
        if (!LIT(pp, end, "[\"") || !str_body(pp, end, &px) || !LIT(pp, end, ",\"") || !str_body(pp, end, &qty) ||
            !LIT(pp, end, "]"))
            return 0;
        if (push_span(self, n, px) < 0 || push_span(self, n, qty) < 0) return -1;
        if (LIT(pp, end, "]")) return 1;
        if (!LIT(pp, end, ",")) return 0;
    }
}

#define FALLBACK Py_RETURN_NONE

static PyObject *unknown(Span name) { return PyUnicode_FromStringAndSize(name.p, name.n); }

static PyObject *scan_quote(Scanner *self, const char *p, const char *end) {
    Span ap, aq, bp, bq, name;
    int64_t rts, ts, v[4];
    if (!str_body(&p, end, &ap) || !LIT(&p, end, ",\"ask_qty\":\"") || !str_body(&p, end, &aq) ||
        !LIT(&p, end, ",\"bid_px\":\"") || !str_body(&p, end, &bp) || !LIT(&p, end, ",\"bid_qty\":\"") ||
        !str_body(&p, end, &bq) || !LIT(&p, end, ",\"kind\":\"quote\",") || !tail(&p, end, &rts, &name, &ts))
        FALLBACK;
    Sym *sym = find_sym(self, name);
    if (sym == NULL) return unknown(name);
    if (!sym->supported || !to_units(bp, sym->px_mant, sym->px_places, 1, &v[0]) ||
        !to_units(bq, sym->qty_mant, sym->qty_places, 0, &v[1]) || !to_units(ap, sym->px_mant, sym->px_places, 1, &v[2]) ||
        !to_units(aq, sym->qty_mant, sym->qty_places, 0, &v[3]))
        FALLBACK;
    Py_INCREF(sym->symbol);
    PyObject *args[7] = {PyLong_FromLongLong(ts), PyLong_FromLongLong(rts), sym->symbol, PyLong_FromLongLong(v[0]),
                         PyLong_FromLongLong(v[1]), PyLong_FromLongLong(v[2]), PyLong_FromLongLong(v[3])};
    return mm_call_builder(self->make_quote, args, 7);
}

static PyObject *scan_trade(Scanner *self, const char *p, const char *end) {
    Span price, qty, name;
    int64_t rts, ts, px, q;
    PyObject *side;
    if (!str_body(&p, end, &price) || !LIT(&p, end, ",\"qty\":\"") || !str_body(&p, end, &qty) ||
        !LIT(&p, end, ",\"recv_ts\":") || !json_int(&p, end, &rts) || !LIT(&p, end, ",\"side\":\""))
        FALLBACK;
    if (LIT(&p, end, "buy\""))
        side = self->buy;
    else if (LIT(&p, end, "sell\""))
        side = self->sell;
    else
        FALLBACK;
    if (!LIT(&p, end, ",\"symbol\":\"") || !str_body(&p, end, &name) || name.n == 0 || !LIT(&p, end, ",\"ts\":") ||
        !json_int(&p, end, &ts) || !line_end(p, end))
        FALLBACK;
    Sym *sym = find_sym(self, name);
    if (sym == NULL) return unknown(name);
    if (!sym->supported || !to_units(price, sym->px_mant, sym->px_places, 1, &px) ||
        !to_units(qty, sym->qty_mant, sym->qty_places, 0, &q))
        FALLBACK;
    Py_INCREF(sym->symbol);
    Py_INCREF(side);
    PyObject *args[6] = {PyLong_FromLongLong(ts), PyLong_FromLongLong(rts), sym->symbol, side, PyLong_FromLongLong(px),
                         PyLong_FromLongLong(q)};
    return mm_call_builder(self->make_trade, args, 6);
}

static PyObject *scan_book(Scanner *self, const char *p, const char *end) {
    Span name;
    int64_t rts, ts;
    Py_ssize_t n = 0, nasks, nbids;
    PyObject *make;
    int rc = level_list(self, &p, end, &n);
    if (rc < 0) return NULL;
    if (rc == 0) FALLBACK;
    nasks = n / 2;
    if (!LIT(&p, end, ",\"bids\":")) FALLBACK;
    rc = level_list(self, &p, end, &n);
    if (rc < 0) return NULL;
    if (rc == 0) FALLBACK;
    nbids = n / 2 - nasks;
    if (!LIT(&p, end, ",\"kind\":\"book_")) FALLBACK;
    if (LIT(&p, end, "delta\","))
        make = self->make_delta;
    else if (LIT(&p, end, "snapshot\","))
        make = self->make_snapshot;
    else
        FALLBACK;
    if (!tail(&p, end, &rts, &name, &ts)) FALLBACK;
    Sym *sym = find_sym(self, name);
    if (sym == NULL) return unknown(name);
    if (!sym->supported) FALLBACK;
    int fallback = 0;
    PyObject *asks = levels_tuple(self, sym, 0, nasks, &fallback);
    if (asks == NULL) {
        if (fallback) FALLBACK;
        return NULL;
    }
    PyObject *bids = levels_tuple(self, sym, 2 * nasks, nbids, &fallback);
    if (bids == NULL) {
        Py_DECREF(asks);
        if (fallback) FALLBACK;
        return NULL;
    }
    Py_INCREF(sym->symbol);
    PyObject *args[5] = {PyLong_FromLongLong(ts), PyLong_FromLongLong(rts), sym->symbol, bids, asks};
    return mm_call_builder(make, args, 5);
}

/* ------------------------------------------------------------------ the type */

static PyObject *Scanner_scan(Scanner *self, PyObject *line) {
    if (!PyUnicode_Check(line)) {
        PyErr_SetString(PyExc_TypeError, "scan() expects a str line");
        return NULL;
    }
#if PY_VERSION_HEX < 0x030C0000 /* 3.12 dropped legacy (not ready) strings and deprecated the check */
    if (!PyUnicode_IS_READY(line)) FALLBACK;
#endif
    if (!PyUnicode_IS_ASCII(line)) FALLBACK;
    const char *p = (const char *)PyUnicode_DATA(line);
    const char *end = p + PyUnicode_GET_LENGTH(line);
    if (LIT(&p, end, "{\"ask_px\":\"")) return scan_quote(self, p, end);
    if (LIT(&p, end, "{\"kind\":\"trade\",\"price\":\"")) return scan_trade(self, p, end);
    if (LIT(&p, end, "{\"asks\":")) return scan_book(self, p, end);
    FALLBACK;
}

static PyObject *Scanner_add(Scanner *self, PyObject *args) {
    PyObject *symbol, *pm, *qm;
    int pp, qp;
    if (!PyArg_ParseTuple(args, "UOiOi:add", &symbol, &pm, &pp, &qm, &qp)) return NULL;
    Py_ssize_t len;
    const char *name = PyUnicode_AsUTF8AndSize(symbol, &len);
    if (name == NULL) return NULL;
    int overflow_p = 0, overflow_q = 0;
    long long pmv = PyLong_AsLongLongAndOverflow(pm, &overflow_p);
    if (pmv == -1 && PyErr_Occurred()) return NULL;
    long long qmv = PyLong_AsLongLongAndOverflow(qm, &overflow_q);
    if (qmv == -1 && PyErr_Occurred()) return NULL;
    int supported = !overflow_p && !overflow_q && pmv > 0 && qmv > 0 && pp >= 0 && qp >= 0 && pp <= MAX_DIGITS &&
                    qp <= MAX_DIGITS && PyUnicode_IS_ASCII(symbol);
    Sym *found = NULL;
    for (Py_ssize_t i = 0; i < self->nsyms; i++)
        if (self->syms[i].len == len && memcmp(self->syms[i].name, name, len) == 0) found = &self->syms[i];
    if (found == NULL) {
        if (self->nsyms >= self->capsyms) {
            Py_ssize_t cap = self->capsyms ? self->capsyms * 2 : 8;
            Sym *grown = PyMem_Realloc(self->syms, cap * sizeof(Sym));
            if (grown == NULL) return PyErr_NoMemory();
            self->syms = grown;
            self->capsyms = cap;
        }
        char *copy = PyMem_Malloc(len + 1);
        if (copy == NULL) return PyErr_NoMemory();
        memcpy(copy, name, len + 1);
        found = &self->syms[self->nsyms++];
        found->name = copy;
        found->len = len;
        found->symbol = NULL;
    }
    Py_INCREF(symbol);
    Py_XSETREF(found->symbol, symbol);
    found->supported = supported;
    found->px_mant = supported ? pmv : 1;
    found->qty_mant = supported ? qmv : 1;
    found->px_places = supported ? pp : 0;
    found->qty_places = supported ? qp : 0;
    self->last = -1;
    return PyBool_FromLong(supported);
}

static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"make_snapshot", "make_delta", "make_trade", "make_quote", "buy", "sell", NULL};
    PyObject *ms, *md, *mt, *mq, *buy, *sell;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOO:Scanner", kw, &ms, &md, &mt, &mq, &buy, &sell)) return -1;
    Py_INCREF(ms);
    Py_XSETREF(self->make_snapshot, ms);
    Py_INCREF(md);
    Py_XSETREF(self->make_delta, md);
    Py_INCREF(mt);
    Py_XSETREF(self->make_trade, mt);
    Py_INCREF(mq);
    Py_XSETREF(self->make_quote, mq);
    Py_INCREF(buy);
    Py_XSETREF(self->buy, buy);
    Py_INCREF(sell);
    Py_XSETREF(self->sell, sell);
    self->last = -1;
    return 0;
}

static void Scanner_dealloc(Scanner *self) {
    Py_XDECREF(self->make_snapshot);
    Py_XDECREF(self->make_delta);
    Py_XDECREF(self->make_trade);
    Py_XDECREF(self->make_quote);
    Py_XDECREF(self->buy);
    Py_XDECREF(self->sell);
    for (Py_ssize_t i = 0; i < self->nsyms; i++) {
        PyMem_Free(self->syms[i].name);
        Py_XDECREF(self->syms[i].symbol);
    }
    PyMem_Free(self->syms);
    PyMem_Free(self->spans);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_O,
     "scan(line) -> event | str | None: the event of a canonical line, the symbol to register first, or None for the "
     "general path."},
    {"add", (PyCFunction)Scanner_add, METH_VARARGS,
     "add(symbol, px_mantissa, px_places, qty_mantissa, qty_places) -> bool: register a symbol's grid (False: its lines "
     "always take the general path)."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mmkit.data._jsonlscan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Canonical mmkit JSONL line scanner (see the module source for the contract).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "mmkit.data._jsonlscan",
                                    "Compiled fast path of the mmkit JSONL reader.", -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__jsonlscan(void) {
    if (PyType_Ready(&ScannerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
