/* mmkit.core._levels: the compiled inner loops of L2Book.apply_levels and apply_delta.

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
  because a rebuild replaces the list.

apply_delta(...) does L2Book.apply_delta (every size checked first, then bids, then asks)
in one call, so a delta costs one Python -> C transition instead of three frames. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define HEAP_SLACK 64

static PyObject *heappush_fn, *heappop_fn, *heapify_fn;

/* sign of an int-like object: -1, 0, 1; -2 on error */
static inline int sign_of(PyObject *v) {
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

/* One level (px, qty) with s = sign of qty (0 or 1; the caller rejects negatives) applied
   exactly as L2Book.apply_level; *heap and *best are owned references replaced as needed.
   0 on success, -1 with an exception set. */
static int apply_one(PyObject *book, PyObject **heap, PyObject *px, PyObject *qty, int s, int is_bid, PyObject **best) {
    int present = PyDict_Contains(book, px);
    if (present < 0) return -1;
    if (present) {
        if (s) return PyDict_SetItem(book, px, qty);
        if (PyDict_DelItem(book, px) < 0) return -1;
        if (*best != Py_None) {
            int eq = PyObject_RichCompareBool(px, *best, Py_EQ);
            if (eq < 0) return -1;
            if (eq) {
                PyObject *nb = next_best(book, *heap, is_bid);
                if (nb == NULL) return -1;
                Py_SETREF(*best, nb);
            }
        }
        return 0;
    }
    if (!s) return 0;
    if (PyDict_SetItem(book, px, qty) < 0) return -1;
    PyObject *k = key_of(px, is_bid);
    if (k == NULL) return -1;
    PyObject *r = call2(heappush_fn, *heap, k);
    Py_DECREF(k);
    if (r == NULL) return -1;
    Py_DECREF(r);
    if (PyList_GET_SIZE(*heap) > 2 * PyDict_GET_SIZE(book) + HEAP_SLACK) {
        PyObject *fresh = rebuild(book, is_bid);
        if (fresh == NULL) return -1;
        Py_SETREF(*heap, fresh);
    }
    int better = 1;
    if (*best != Py_None) {
        better = PyObject_RichCompareBool(px, *best, is_bid ? Py_GT : Py_LT);
        if (better < 0) return -1;
    }
    if (better) {
        Py_INCREF(px);
        Py_SETREF(*best, px);
    }
    return 0;
}

static int levels_impl_init(void) {
    PyObject *heapq = PyImport_ImportModule("heapq");
    if (heapq == NULL) return -1;
    heappush_fn = PyObject_GetAttrString(heapq, "heappush");
    heappop_fn = PyObject_GetAttrString(heapq, "heappop");
    heapify_fn = PyObject_GetAttrString(heapq, "heapify");
    Py_DECREF(heapq);
    return (heappush_fn == NULL || heappop_fn == NULL || heapify_fn == NULL) ? -1 : 0;
}

/* One side's levels in order (seq: a PySequence_Fast).  *heap, *best and *bad are owned
   references, replaced as the loop goes; *n counts levels applied.  Stops at the first
   negative size (*bad = (px, qty)).  0 on success, -1 with an exception set. */
static int side_loop(PyObject *book, PyObject **heap, PyObject *seq, int is_bid, PyObject **best, Py_ssize_t *n,
                     PyObject **bad) {
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
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
            return -1;
        }
        int s = sign_of(qty);
        if (s == -2) return -1;
        if (s < 0) {
            Py_SETREF(*bad, PyTuple_Pack(2, px, qty));
            return *bad == NULL ? -1 : 0;
        }
        (*n)++;
        if (apply_one(book, heap, px, qty, s, is_bid, best) < 0) return -1;
    }
    return 0;
}

static PyObject *apply_side(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "apply_side(book, heap, levels, is_bid, best)");
        return NULL;
    }
    PyObject *book = args[0], *heap = args[1], *best = args[4];
    if (!PyDict_CheckExact(book) || !PyList_CheckExact(heap)) {
        PyErr_SetString(PyExc_TypeError, "apply_side needs the side's dict and heap list");
        return NULL;
    }
    int is_bid = PyObject_IsTrue(args[3]);
    if (is_bid < 0) return NULL;
    PyObject *seq = PySequence_Fast(args[2], "levels must be iterable");
    if (seq == NULL) return NULL;
    Py_INCREF(heap);
    Py_INCREF(best);
    PyObject *bad = Py_None;
    Py_INCREF(bad);
    Py_ssize_t n = 0;
    int rc = side_loop(book, &heap, seq, is_bid, &best, &n, &bad);
    Py_DECREF(seq);
    if (rc < 0) {
        Py_DECREF(heap);
        Py_DECREF(best);
        Py_XDECREF(bad);
        return NULL;
    }
    return Py_BuildValue("(NNnN)", best, heap, n, bad);
}

static PyObject *first_negative_of(PyObject *const *lists, Py_ssize_t nlists);

/* apply_delta(bids, bid_heap, best_bid, asks, ask_heap, best_ask, bid_levels, ask_levels)
   -> (best_bid, bid_heap, best_ask, ask_heap, applied, bad): L2Book.apply_delta in one
   call.  Every size is checked first: with a negative one nothing changes (applied 0,
   bad = ((px, qty), qty) as first_negative_of gives it). */
static PyObject *apply_delta(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "apply_delta(bids, bid_heap, best_bid, asks, ask_heap, best_ask, bid_levels, ask_levels)");
        return NULL;
    }
    PyObject *bids = args[0], *bheap = args[1], *bbest = args[2], *asks = args[3], *aheap = args[4], *abest = args[5];
    if (!PyDict_CheckExact(bids) || !PyList_CheckExact(bheap) || !PyDict_CheckExact(asks) || !PyList_CheckExact(aheap)) {
        PyErr_SetString(PyExc_TypeError, "apply_delta needs each side's dict and heap list");
        return NULL;
    }
    PyObject *bad = first_negative_of(args + 6, 2);
    if (bad == NULL) return NULL;
    Py_INCREF(bheap);
    Py_INCREF(bbest);
    Py_INCREF(aheap);
    Py_INCREF(abest);
    Py_ssize_t n = 0;
    if (bad == Py_None) {
        PyObject *bseq = PySequence_Fast(args[6], "levels must be iterable");
        PyObject *aseq = bseq ? PySequence_Fast(args[7], "levels must be iterable") : NULL;
        int rc = aseq ? side_loop(bids, &bheap, bseq, 1, &bbest, &n, &bad) : -1;
        if (rc == 0) rc = side_loop(asks, &aheap, aseq, 0, &abest, &n, &bad);
        Py_XDECREF(bseq);
        Py_XDECREF(aseq);
        if (rc < 0) {
            Py_DECREF(bheap);
            Py_DECREF(bbest);
            Py_DECREF(aheap);
            Py_DECREF(abest);
            Py_XDECREF(bad);
            return NULL;
        }
    }
    return Py_BuildValue("(NNNNnN)", bbest, bheap, abest, aheap, n, bad);
}

/* The first level of the lists with a negative size as (level, qty), or Py_None (new reference). */
static PyObject *first_negative_of(PyObject *const *lists, Py_ssize_t nlists) {
    for (Py_ssize_t a = 0; a < nlists; a++) {
        PyObject *seq = PySequence_Fast(lists[a], "levels must be iterable");
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
    {"apply_delta", (PyCFunction)(void (*)(void))apply_delta, METH_FASTCALL,
     "apply_delta(bids, bid_heap, best_bid, asks, ask_heap, best_ask, bid_levels, ask_levels) -> "
     "(best_bid, bid_heap, best_ask, ask_heap, applied, bad): L2Book.apply_delta in one call."},
    {"apply_side", (PyCFunction)(void (*)(void))apply_side, METH_FASTCALL,
     "apply_side(book, heap, levels, is_bid, best) -> (best, heap, applied, bad): L2Book.apply_levels for one side."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "mmkit.core._levels",
                                    "Compiled inner loop of L2Book.apply_levels.", -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__levels(void) {
    if (levels_impl_init() < 0) return NULL;
    return PyModule_Create(&module);
}
