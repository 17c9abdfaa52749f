/* mmkit.core._levels: the compiled inner loop of L2Book.apply_levels.

Why: every depth update of a backtest is applied twice (the fill simulator's exchange-time
book and the strategy's local book), a real Binance USD-M depth update carries ~44 levels,
and the bytecode loop over them was the largest single cost of a backtest.  This is the
same loop over the same Python objects (the side's dict price -> lots and its lazily
pruned heap list), so the book's data layout, semantics and pure-Python path are
unchanged; L2Book uses it when it is built.  Pure: no I/O.

apply_side(book, heap, levels, is_bid, best) -> (best, heap, applied, bad)
  Applies (px, qty) pairs in order exactly as L2Book.apply_levels: qty 0 deletes, a new
  level is pushed on the heap (negated for bids), the heap is rebuilt from the dict when it
  exceeds 2 * levels + 64 entries, deleting the best level pops stale heap entries until a
  live price surfaces.  Stops at the first negative size and returns it as bad = (px, qty)
  (the caller raises); applied counts the levels applied before it.  heap is returned
  because a rebuild replaces the list. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define HEAP_SLACK 64

static PyObject *heappush_fn, *heappop_fn, *heapify_fn;

/* sign of an int-like object: -1, 0, 1; -2 on error */
static int sign_of(PyObject *v) {
    if (PyLong_CheckExact(v)) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow) return overflow;
        if (x == -1 && PyErr_Occurred()) return -2;
        return (x > 0) - (x < 0);
    }
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) return -2;
    int lt = PyObject_RichCompareBool(v, zero, Py_LT);
    int gt = lt == 0 ? PyObject_RichCompareBool(v, zero, Py_GT) : 0;
    Py_DECREF(zero);
    if (lt < 0 || gt < 0) return -2;
    return lt ? -1 : gt;
}

static PyObject *call1(PyObject *fn, PyObject *a) {
    PyObject *args[1] = {a};
    return PyObject_Vectorcall(fn, args, 1, NULL);
}

static PyObject *call2(PyObject *fn, PyObject *a, PyObject *b) {
    PyObject *args[2] = {a, b};
    return PyObject_Vectorcall(fn, args, 2, NULL);
}

/* heap key of a price: -px for bids */
static PyObject *key_of(PyObject *px, int is_bid) {
    if (!is_bid) {
        Py_INCREF(px);
        return px;
    }
    return PyNumber_Negative(px);
}

/* New heap list from the dict's prices (new reference). */
static PyObject *rebuild(PyObject *book, int is_bid) {
    PyObject *heap = PyList_New(0);
    if (heap == NULL) return NULL;
    PyObject *px, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(book, &pos, &px, &value)) {
        PyObject *k = key_of(px, is_bid);
        if (k == NULL || PyList_Append(heap, k) < 0) {
            Py_XDECREF(k);
            Py_DECREF(heap);
            return NULL;
        }
        Py_DECREF(k);
    }
    PyObject *r = call1(heapify_fn, heap);
    if (r == NULL) {
        Py_DECREF(heap);
        return NULL;
    }
    Py_DECREF(r);
    return heap;
}

/* The next best price after the best was deleted (new reference; Py_None when empty). */
static PyObject *next_best(PyObject *book, PyObject *heap, int is_bid) {
    while (PyList_GET_SIZE(heap) > 0) {
        PyObject *px = key_of(PyList_GET_ITEM(heap, 0), is_bid);
        if (px == NULL) return NULL;
        int live = PyDict_Contains(book, px);
        if (live < 0) {
            Py_DECREF(px);
            return NULL;
        }
        if (live) return px;
        Py_DECREF(px);
        PyObject *popped = call1(heappop_fn, heap);
        if (popped == NULL) return NULL;
        Py_DECREF(popped);
    }
    Py_RETURN_NONE;
}

static PyObject *apply_side(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "apply_side(book, heap, levels, is_bid, best)");
        return NULL;
    }
    PyObject *book = args[0], *heap = args[1], *levels = args[2], *best = args[4];
    if (!PyDict_CheckExact(book) || !PyList_CheckExact(heap)) {
        PyErr_SetString(PyExc_TypeError, "apply_side needs the side's dict and heap list");
        return NULL;
    }
    int is_bid = PyObject_IsTrue(args[3]);
    if (is_bid < 0) return NULL;
    PyObject *seq = PySequence_Fast(levels, "levels must be iterable");
    if (seq == NULL) return NULL;
    Py_INCREF(heap);
    Py_INCREF(best);
    PyObject *bad = Py_None;
    Py_INCREF(bad);
    Py_ssize_t n = 0, count = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *lv = items[i], *px, *qty;
        if (PyTuple_CheckExact(lv) && PyTuple_GET_SIZE(lv) == 2) {
            px = PyTuple_GET_ITEM(lv, 0);
            qty = PyTuple_GET_ITEM(lv, 1);
        } else if (PyList_CheckExact(lv) && PyList_GET_SIZE(lv) == 2) {
            px = PyList_GET_ITEM(lv, 0);
            qty = PyList_GET_ITEM(lv, 1);
        } else {
            PyErr_SetString(PyExc_ValueError, "a level must be a (price, size) pair");
            goto error;
        }
        int s = sign_of(qty);
        if (s == -2) goto error;
        if (s < 0) {
            Py_SETREF(bad, PyTuple_Pack(2, px, qty));
            if (bad == NULL) goto error;
            break;
        }
        n++;
        int present = PyDict_Contains(book, px);
        if (present < 0) goto error;
        if (present) {
            if (s) {
                if (PyDict_SetItem(book, px, qty) < 0) goto error;
            } else {
                if (PyDict_DelItem(book, px) < 0) goto error;
                if (best != Py_None) {
                    int eq = PyObject_RichCompareBool(px, best, Py_EQ);
                    if (eq < 0) goto error;
                    if (eq) {
                        PyObject *nb = next_best(book, heap, is_bid);
                        if (nb == NULL) goto error;
                        Py_SETREF(best, nb);
                    }
                }
            }
        } else if (s) {
            if (PyDict_SetItem(book, px, qty) < 0) goto error;
            PyObject *k = key_of(px, is_bid);
            if (k == NULL) goto error;
            PyObject *r = call2(heappush_fn, heap, k);
            Py_DECREF(k);
            if (r == NULL) goto error;
            Py_DECREF(r);
            if (PyList_GET_SIZE(heap) > 2 * PyDict_GET_SIZE(book) + HEAP_SLACK) {
                PyObject *fresh = rebuild(book, is_bid);
                if (fresh == NULL) goto error;
                Py_SETREF(heap, fresh);
            }
            int better = 1;
            if (best != Py_None) {
                better = PyObject_RichCompareBool(px, best, is_bid ? Py_GT : Py_LT);
                if (better < 0) goto error;
            }
            if (better) {
                Py_INCREF(px);
                Py_SETREF(best, px);
            }
        }
    }
    Py_DECREF(seq);
    PyObject *out = Py_BuildValue("(NNnN)", best, heap, n, bad);
    return out;
error:
    Py_DECREF(seq);
    Py_DECREF(heap);
    Py_DECREF(best);
    Py_XDECREF(bad);
    return NULL;
}

static PyObject *first_negative(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    for (Py_ssize_t a = 0; a < nargs; a++) {
        PyObject *seq = PySequence_Fast(args[a], "levels must be iterable");
        if (seq == NULL) return NULL;
        Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
        PyObject **items = PySequence_Fast_ITEMS(seq);
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *lv = items[i];
            PyObject *qty;
            if (PyTuple_CheckExact(lv) && PyTuple_GET_SIZE(lv) == 2)
                qty = PyTuple_GET_ITEM(lv, 1);
            else if (PyList_CheckExact(lv) && PyList_GET_SIZE(lv) == 2)
                qty = PyList_GET_ITEM(lv, 1);
            else {
                Py_DECREF(seq);
                PyErr_SetString(PyExc_ValueError, "a level must be a (price, size) pair");
                return NULL;
            }
            int s = sign_of(qty);
            if (s == -2 || s < 0) {
                PyObject *out = s < 0 ? PyTuple_Pack(2, lv, qty) : NULL;
                Py_DECREF(seq);
                return out;
            }
        }
        Py_DECREF(seq);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"first_negative", (PyCFunction)(void (*)(void))first_negative, METH_FASTCALL,
     "first_negative(*level_lists) -> (level, qty) | None: the first level with a negative size, in order."},
    {"apply_side", (PyCFunction)(void (*)(void))apply_side, METH_FASTCALL,
     "apply_side(book, heap, levels, is_bid, best) -> (best, heap, applied, bad): L2Book.apply_levels for one side."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "mmkit.core._levels",
                                    "Compiled inner loop of L2Book.apply_levels.", -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__levels(void) {
    PyObject *heapq = PyImport_ImportModule("heapq");
    if (heapq == NULL) return NULL;
    heappush_fn = PyObject_GetAttrString(heapq, "heappush");
    heappop_fn = PyObject_GetAttrString(heapq, "heappop");
    heapify_fn = PyObject_GetAttrString(heapq, "heapify");
    Py_DECREF(heapq);
    if (heappush_fn == NULL || heappop_fn == NULL || heapify_fn == NULL) return NULL;
    return PyModule_Create(&module);
}
