/* mmkit.data._cacheiter: rebuild a run of cache rows as event objects in one call.

Why: a backtest reads its events from the columnar cache, and rebuilding each row as a
core.events object in Python (slices, tolist, zips and an if-chain per row) cost about
3 us per synthetic event, a quarter of a backtest's time.  This does the same from the
raw columns in C and calls the same fast builders (core.events), so the objects are the
ones the pure path makes; EventCache.iter_events uses it when it is built.

build(cols, levels, lo, hi, symbols, makers) -> (events, bad_row, levels_end)
  cols    the 8 event columns (kind b, sym H, ts q, recv_ts q, a..d q) as buffers
  levels  (level_px, level_qty) as q buffers
  makers  (make_book_snapshot, make_book_delta, make_trade, make_quote, make_seq_gap)
  Rows lo..hi-1 become a list of events.  A row that cannot be an event (unknown kind
  code, symbol index outside symbols, level range outside the level columns) stops the
  run: events holds the rows before it and bad_row is its index (-1 when all were good);
  the caller raises E_CACHE_CORRUPT there.  levels_end is the level row after the last
  book event built (-1 when none was): the caller drops mapped pages up to it. */

#include "../_ccommon.h"
#include <stdint.h>

enum { K_SNAPSHOT = 0, K_DELTA = 1, K_TRADE = 2, K_QUOTE = 3, K_SEQ_GAP = 4 };

static int get(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->itemsize != itemsize || view->len % itemsize) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "cache column %s has item size %zd, expected %zd", what, view->itemsize, itemsize);
        return -1;
    }
    return 0;
}

static PyObject *levels_tuple(const int64_t *px, const int64_t *qty, Py_ssize_t from, Py_ssize_t n) {
    PyObject *tup = PyTuple_New(n);
    if (tup == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PyLong_FromLongLong(px[from + i]), *q = PyLong_FromLongLong(qty[from + i]);
        PyObject *lv = (p && q) ? PyTuple_Pack(2, p, q) : NULL;
        Py_XDECREF(p);
        Py_XDECREF(q);
        if (lv == NULL) {
            Py_DECREF(tup);
            return NULL;
        }
        PyTuple_SET_ITEM(tup, i, lv);
    }
    return tup;
}


static PyObject *build(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *cols, *levels, *symbols, *makers;
    Py_ssize_t lo, hi;
    if (!PyArg_ParseTuple(args, "O!O!nnO!O!:build", &PyTuple_Type, &cols, &PyTuple_Type, &levels, &lo, &hi,
                          &PyTuple_Type, &symbols, &PyTuple_Type, &makers))
        return NULL;
    if (PyTuple_GET_SIZE(cols) != 8 || PyTuple_GET_SIZE(levels) != 2 || PyTuple_GET_SIZE(makers) != 5) {
        PyErr_SetString(PyExc_TypeError, "build(cols[8], levels[2], lo, hi, symbols, makers[5])");
        return NULL;
    }
    static const Py_ssize_t sizes[8] = {1, 2, 8, 8, 8, 8, 8, 8};
    static const char *names[8] = {"kind", "sym", "ts", "recv_ts", "a", "b", "c", "d"};
    Py_buffer v[10];
    int got = 0;
    PyObject *out = NULL, *result = NULL;
    for (; got < 8; got++)
        if (get(PyTuple_GET_ITEM(cols, got), &v[got], sizes[got], names[got]) < 0) goto done;
    for (; got < 10; got++)
        if (get(PyTuple_GET_ITEM(levels, got - 8), &v[got], 8, got == 8 ? "level_px" : "level_qty") < 0) goto done;
    Py_ssize_t rows = v[0].len;
    for (int i = 1; i < 8; i++)
        if (v[i].len / sizes[i] != rows) {
            PyErr_SetString(PyExc_ValueError, "cache event columns differ in length");
            goto done;
        }
    Py_ssize_t nlevels = v[8].len / 8;
    if (v[9].len / 8 != nlevels) {
        PyErr_SetString(PyExc_ValueError, "cache level columns differ in length");
        goto done;
    }
    if (lo < 0 || hi > rows || lo > hi) {
        PyErr_SetString(PyExc_IndexError, "row range outside the cache");
        goto done;
    }
    const int8_t *kind = v[0].buf;
    const uint16_t *sym = v[1].buf;
    const int64_t *ts = v[2].buf, *rts = v[3].buf, *a = v[4].buf, *b = v[5].buf, *c = v[6].buf, *d = v[7].buf;
    const int64_t *lpx = v[8].buf, *lqty = v[9].buf;
    Py_ssize_t nsym = PyTuple_GET_SIZE(symbols);
    Py_ssize_t bad = -1, levels_end = -1;
    out = PyList_New(0);
    if (out == NULL) goto done;
    for (Py_ssize_t i = lo; i < hi; i++) {
        if (sym[i] >= nsym) {
            bad = i;
            break;
        }
        PyObject *symbol = PyTuple_GET_ITEM(symbols, sym[i]);
        PyObject *ev;
        int k = kind[i];
        if (k == K_QUOTE) {
            Py_INCREF(symbol);
            PyObject *args7[7] = {PyLong_FromLongLong(ts[i]), PyLong_FromLongLong(rts[i]), symbol, PyLong_FromLongLong(a[i]),
                                  PyLong_FromLongLong(b[i]), PyLong_FromLongLong(c[i]), PyLong_FromLongLong(d[i])};
            ev = mm_call_builder(PyTuple_GET_ITEM(makers, 3), args7, 7);
        } else if (k == K_TRADE) {
            Py_INCREF(symbol);
            PyObject *args6[6] = {PyLong_FromLongLong(ts[i]), PyLong_FromLongLong(rts[i]), symbol, PyLong_FromLongLong(a[i]),
                                  PyLong_FromLongLong(b[i]), PyLong_FromLongLong(c[i])};
            ev = mm_call_builder(PyTuple_GET_ITEM(makers, 2), args6, 6);
        } else if (k == K_DELTA || k == K_SNAPSHOT) {
            int64_t first = a[i], nb = b[i], na = c[i];
            if (first < 0 || nb < 0 || na < 0 || first > nlevels || nb > nlevels - first || na > nlevels - first - nb) {
                bad = i;
                break;
            }
            levels_end = (Py_ssize_t)(first + nb + na);
            PyObject *bids = levels_tuple(lpx, lqty, (Py_ssize_t)first, (Py_ssize_t)nb);
            PyObject *asks = bids ? levels_tuple(lpx, lqty, (Py_ssize_t)(first + nb), (Py_ssize_t)na) : NULL;
            Py_INCREF(symbol);
            PyObject *args5[5] = {PyLong_FromLongLong(ts[i]), PyLong_FromLongLong(rts[i]), symbol, bids, asks};
            ev = mm_call_builder(PyTuple_GET_ITEM(makers, k == K_DELTA ? 1 : 0), args5, 5);
        } else if (k == K_SEQ_GAP) {
            Py_INCREF(symbol);
            PyObject *args5[5] = {PyLong_FromLongLong(ts[i]), PyLong_FromLongLong(rts[i]), symbol, PyLong_FromLongLong(a[i]),
                                  PyLong_FromLongLong(b[i])};
            ev = mm_call_builder(PyTuple_GET_ITEM(makers, 4), args5, 5);
        } else {
            bad = i;
            break;
        }
        if (ev == NULL) goto done;
        int rc = PyList_Append(out, ev);
        Py_DECREF(ev);
        if (rc < 0) goto done;
    }
    result = Py_BuildValue("(Onn)", out, bad, levels_end);
done:
    Py_XDECREF(out);
    for (int i = 0; i < got; i++) PyBuffer_Release(&v[i]);
    return result;
}

/* min(a[i] - b[i]) over two int64 buffers of one length (the feed-clock pre-pass: the
   smallest recv_ts - ts), None when empty; OverflowError when a difference leaves 64 bits
   (the caller then uses Python ints). */
static PyObject *min_diff(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *ao, *bo;
    if (!PyArg_ParseTuple(args, "OO", &ao, &bo)) return NULL;
    Py_buffer a, b;
    if (PyObject_GetBuffer(ao, &a, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (PyObject_GetBuffer(bo, &b, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&a);
        return NULL;
    }
    PyObject *result = NULL;
    if (a.itemsize != 8 || b.itemsize != 8 || a.len != b.len) {
        PyErr_SetString(PyExc_ValueError, "min_diff takes two int64 columns of one length");
    } else if (a.len == 0) {
        Py_INCREF(Py_None);
        result = Py_None;
    } else {
        const int64_t *x = a.buf, *y = b.buf;
        Py_ssize_t n = a.len / 8;
        int64_t lo = 0, d;
        int over = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            over |= __builtin_sub_overflow(x[i], y[i], &d);
            if (i == 0 || d < lo) lo = d;
        }
        if (over) PyErr_SetString(PyExc_OverflowError, "a difference beyond 64 bits");
        else result = PyLong_FromLongLong(lo);
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return result;
}

/* How many times each byte value occurs in a buffer (the pre-pass's count per event
   kind code): a list of 256 ints, one pass. */
static PyObject *histogram(PyObject *module, PyObject *arg) {
    (void)module;
    Py_buffer v;
    if (PyObject_GetBuffer(arg, &v, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    Py_ssize_t counts[256] = {0};
    const unsigned char *p = v.buf;
    for (Py_ssize_t i = 0; i < v.len; i++) counts[p[i]]++;
    PyBuffer_Release(&v);
    PyObject *out = PyList_New(256);
    if (out == NULL) return NULL;
    for (int k = 0; k < 256; k++) {
        PyObject *c = PyLong_FromSsize_t(counts[k]);
        if (c == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, k, c);
    }
    return out;
}

static PyMethodDef methods[] = {
    {"histogram", histogram, METH_O, "histogram(buf) -> [count of each byte value 0..255]."},
    {"min_diff", min_diff, METH_VARARGS, "min_diff(a, b) -> min(a[i] - b[i]) over two int64 columns, or None."},
    {"build", build, METH_VARARGS,
     "build(cols, levels, lo, hi, symbols, makers) -> (events, bad_row, levels_end): cache rows lo..hi-1 as events."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "mmkit.data._cacheiter",
                                    "Compiled row -> event rebuilding of the columnar cache.", -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__cacheiter(void) { return PyModule_Create(&module); }
