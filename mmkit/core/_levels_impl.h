/* The book-level update shared by mmkit.core._levels and mmkit.core._fastfeed: the same
loop over the same Python objects as L2Book.apply_level (the side's dict price -> lots and
its lazily pruned heap list of prices, negated for bids).  Static functions: each module
that includes this gets its own copy; call levels_impl_init() from the module init. */
#ifndef MMKIT_LEVELS_IMPL_H
#define MMKIT_LEVELS_IMPL_H

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

#endif
