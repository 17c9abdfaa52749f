/* mmkit.core._nbook: the storage half of NativeL2Book (mmkit/core/book.py).

NativeBook keeps each side as a sorted C array of int64 (price, size) pairs (see
_nbook_impl.h) and offers the part of L2Book's interface that touches storage: the
level updates (apply_level, apply_levels, apply_delta, with L2Book's effects and errors),
a whole-book load for snapshots, clear, size_at, the best prices and the counters.  The
sides are read through LevelsView, a read-only mapping price -> size (best price first),
which is what L2Book's bids/asks dicts are to their readers.  book.py's NativeL2Book adds
the remaining readers in Python, shared with L2Book.  The compiled engine loop
(_fastfeed.c) updates the arrays in place through the same header. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "_nbook_impl.h"

static PyTypeObject NativeBookType;
static PyTypeObject LevelsViewType;

/* ------------------------------------------------------------------ helpers */

static int to_i64(PyObject *v, int64_t *out) {
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred()) return -1;
    *out = (int64_t)x;
    return 0;
}

static int side_of(PyObject *v, int *is_bid) {
    int64_t s;
    if (to_i64(v, &s) < 0) return -1;
    *is_bid = s > 0;
    return 0;
}

static PyObject *negative(NativeBook *b, int64_t qty, int64_t px) {
    PyErr_Format(PyExc_ValueError, "%S: negative size %lld at %lld", b->symbol, (long long)qty, (long long)px);
    return NULL;
}

/* (px, qty) of one level given as a 2-item sequence, as `for px, qty in levels` unpacks it. */
static int unpack_level(PyObject *item, int64_t *px, int64_t *qty) {
    if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2)
        return (to_i64(PyTuple_GET_ITEM(item, 0), px) < 0 || to_i64(PyTuple_GET_ITEM(item, 1), qty) < 0) ? -1 : 0;
    PyObject *seq = PySequence_Fast(item, "a book level must be a (price, size) pair");
    if (seq == NULL) return -1;
    int rc = -1;
    if (PySequence_Fast_GET_SIZE(seq) != 2)
        PyErr_Format(PyExc_ValueError, "a book level must be a (price, size) pair, got %zd values",
                     PySequence_Fast_GET_SIZE(seq));
    else
        rc = (to_i64(PySequence_Fast_GET_ITEM(seq, 0), px) < 0 || to_i64(PySequence_Fast_GET_ITEM(seq, 1), qty) < 0)
                 ? -1 : 0;
    Py_DECREF(seq);
    return rc;
}

static PyObject *best_obj(const NbSide *s) {
    int64_t px;
    if (!nb_best(s, &px)) Py_RETURN_NONE;
    return PyLong_FromLongLong(px);
}

/* A (price, size) pair, as the dict book's items() yields them (new reference). */
static PyObject *level_pair(int64_t px, int64_t qty) {
    PyObject *p = PyLong_FromLongLong(px), *q = p ? PyLong_FromLongLong(qty) : NULL;
    PyObject *t = q ? PyTuple_Pack(2, p, q) : NULL;
    Py_XDECREF(p);
    Py_XDECREF(q);
    return t;
}

/* Append (px, qty) to list `out`; on error drop `out` and return NULL. */
static PyObject *append_pair(PyObject *out, int64_t px, int64_t qty) {
    PyObject *t = level_pair(px, qty);
    if (t == NULL || PyList_Append(out, t) < 0) {
        Py_XDECREF(t);
        Py_DECREF(out);
        return NULL;
    }
    Py_DECREF(t);
    return out;
}

/* ------------------------------------------------------------------ NativeBook */

static PyObject *nb_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    (void)args;
    (void)kwds;
    NativeBook *self = (NativeBook *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    Py_INCREF(Py_None);
    self->symbol = Py_None;
    Py_INCREF(Py_None);
    self->instrument = Py_None;
    return (PyObject *)self;
}

static int nb_init(NativeBook *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"symbol", "instrument", NULL};
    PyObject *symbol, *instrument = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O", kwlist, &symbol, &instrument)) return -1;
    Py_INCREF(symbol);
    Py_SETREF(self->symbol, symbol);
    Py_INCREF(instrument);
    Py_SETREF(self->instrument, instrument);
    /* a fresh book, as L2Book.__init__ makes one (also when called again) */
    nb_clear_side(&self->side[0]);
    nb_clear_side(&self->side[1]);
    self->updates = self->snapshots = self->ts = 0;
    self->stale = 0;
    return 0;
}

static void nb_dealloc(NativeBook *self) {
    nb_free_side(&self->side[0]);
    nb_free_side(&self->side[1]);
    Py_XDECREF(self->symbol);
    Py_XDECREF(self->instrument);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *nb_apply_level(NativeBook *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "apply_level(side, px, qty)");
        return NULL;
    }
    int is_bid;
    int64_t px, qty;
    if (side_of(args[0], &is_bid) < 0 || to_i64(args[1], &px) < 0 || to_i64(args[2], &qty) < 0) return NULL;
    if (qty < 0) return negative(self, qty, px);
    self->updates++;
    if (nb_set(&self->side[is_bid ? NB_BIDS : NB_ASKS], is_bid, px, qty) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *nb_apply_levels(NativeBook *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply_levels(side, levels)");
        return NULL;
    }
    int is_bid;
    if (side_of(args[0], &is_bid) < 0) return NULL;
    NbSide *s = &self->side[is_bid ? NB_BIDS : NB_ASKS];
    PyObject *it = PyObject_GetIter(args[1]);
    if (it == NULL) return NULL;
    PyObject *item;
    int rc = 0;
    while (rc == 0 && (item = PyIter_Next(it)) != NULL) {
        int64_t px, qty;
        rc = unpack_level(item, &px, &qty);
        Py_DECREF(item);
        if (rc == 0 && qty < 0) {
            negative(self, qty, px);
            rc = -1;
        }
        if (rc == 0) {
            self->updates++;
            rc = nb_set(s, is_bid, px, qty);
        }
    }
    Py_DECREF(it);
    if (rc < 0 || PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

/* All sizes are checked before anything changes (L2Book.apply_delta). */
static PyObject *nb_apply_delta(NativeBook *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply_delta(bids, asks)");
        return NULL;
    }
    PyObject *seq[2] = {NULL, NULL};
    PyObject *result = NULL;
    Py_ssize_t total = 0;
    for (int k = 0; k < 2; k++) {
        seq[k] = PySequence_Fast(args[k], "book delta sides must be iterables of (price, size)");
        if (seq[k] == NULL) goto done;
        total += PySequence_Fast_GET_SIZE(seq[k]);
    }
    int64_t *buf = PyMem_Malloc((size_t)(2 * total + 1) * sizeof(int64_t));
    if (buf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t j = 0;
    for (int k = 0; k < 2; k++)
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq[k]); i++, j += 2)
            if (unpack_level(PySequence_Fast_GET_ITEM(seq[k], i), &buf[j], &buf[j + 1]) < 0) goto free_buf;
    for (j = 0; j < 2 * total; j += 2)
        if (buf[j + 1] < 0) {
            negative(self, buf[j + 1], buf[j]);
            goto free_buf;
        }
    j = 0;
    for (int k = 0; k < 2; k++) {
        NbSide *s = &self->side[k];
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq[k]); i++, j += 2)
            if (nb_set(s, k == NB_BIDS, buf[j], buf[j + 1]) < 0) goto free_buf;
    }
    self->updates += total;
    Py_INCREF(Py_None);
    result = Py_None;
free_buf:
    PyMem_Free(buf);
done:
    Py_XDECREF(seq[0]);
    Py_XDECREF(seq[1]);
    return result;
}

/* One side replaced by the items of a dict price -> size (sizes already checked > 0). */
static int load_side(NbSide *s, int is_bid, PyObject *levels) {
    if (!PyDict_Check(levels)) {
        PyErr_SetString(PyExc_TypeError, "_load takes dicts price -> size");
        return -1;
    }
    nb_clear_side(s);
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(levels, &pos, &k, &v)) {
        int64_t px, qty;
        if (to_i64(k, &px) < 0 || to_i64(v, &qty) < 0) return -1;
        if (qty <= 0) {
            PyErr_SetString(PyExc_ValueError, "_load takes sizes > 0");
            return -1;
        }
        if (nb_set(s, is_bid, px, qty) < 0) return -1;
    }
    return nb_heap_rebuild(s, is_bid);
}

static PyObject *nb_load(NativeBook *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_load(bids, asks)");
        return NULL;
    }
    if (load_side(&self->side[NB_BIDS], 1, args[0]) < 0 || load_side(&self->side[NB_ASKS], 0, args[1]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *nb_clear(NativeBook *self, PyObject *unused) {
    (void)unused;
    nb_clear_side(&self->side[0]);
    nb_clear_side(&self->side[1]);
    Py_RETURN_NONE;
}

static PyObject *nb_size_at(NativeBook *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "size_at(side, px)");
        return NULL;
    }
    int is_bid;
    int64_t px;
    if (side_of(args[0], &is_bid) < 0) return NULL;
    if (to_i64(args[1], &px) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return NULL;
        PyErr_Clear();
        return PyLong_FromLong(0);
    }
    return PyLong_FromLongLong(nb_get(&self->side[is_bid ? NB_BIDS : NB_ASKS], px));
}

static int64_t *sorted_prices(const NbSide *s, int is_bid);

/* Sum of the sizes at prices[0..k-1] as an int object (exact past 64 bits). */
static PyObject *sum_sizes(const NbSide *s, const int64_t *prices, Py_ssize_t k) {
    int64_t total = 0;
    Py_ssize_t i = 0;
    for (; i < k; i++)
        if (__builtin_add_overflow(total, nb_get(s, prices[i]), &total)) break;
    if (i == k) return PyLong_FromLongLong(total);
    PyObject *t = PyLong_FromLong(0);
    for (i = 0; t != NULL && i < k; i++) {
        PyObject *q = PyLong_FromLongLong(nb_get(s, prices[i]));
        PyObject *u = q ? PyNumber_Add(t, q) : NULL;
        Py_XDECREF(q);
        Py_SETREF(t, u);
    }
    return t;
}

/* signals.top_lots on this side: the lots of the best n levels (nb_top_lots), else the
   sum over the sorted prices (a sparse side, or a sum past 64 bits as an exact int). */
static PyObject *nb_top_lots_py(NativeBook *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "top_lots(side, n)");
        return NULL;
    }
    int is_bid;
    int64_t n, total;
    if (side_of(args[0], &is_bid) < 0 || to_i64(args[1], &n) < 0) return NULL;
    const NbSide *s = &self->side[is_bid ? NB_BIDS : NB_ASKS];
    if (nb_top_lots(s, is_bid, n, &total)) return PyLong_FromLongLong(total);
    int64_t *prices = sorted_prices(s, is_bid);
    if (prices == NULL) return NULL;
    PyObject *r = sum_sizes(s, prices, (Py_ssize_t)(n < s->n ? n : s->n));
    PyMem_Free(prices);
    return r;
}

/* The levels of a side from its best price through `limit` (bids down to it, asks up to
   it), best first, as (price, size) pairs.  Walks the ticks from the best price when the
   range is short (the dense top of a book), else filters the sorted prices. */
static PyObject *nb_levels_within(NativeBook *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "levels_within(side, limit)");
        return NULL;
    }
    int is_bid, overflow;
    if (side_of(args[0], &is_bid) < 0) return NULL;
    const NbSide *s = &self->side[is_bid ? NB_BIDS : NB_ASKS];
    long long lim = PyLong_AsLongLongAndOverflow(args[1], &overflow);
    if (lim == -1 && PyErr_Occurred()) return NULL;
    if (overflow) lim = overflow > 0 ? INT64_MAX : INT64_MIN; /* every price is on the near side of it */
    PyObject *out = PyList_New(0);
    if (out == NULL || !s->has_best || nb_better(is_bid, (int64_t)lim, s->best)) return out;
    uint64_t span = is_bid ? (uint64_t)s->best - (uint64_t)lim : (uint64_t)lim - (uint64_t)s->best;
    if (span <= (uint64_t)(4 * s->n + 64)) {
        int64_t px = s->best, step = is_bid ? -1 : 1;
        for (uint64_t i = 0; out != NULL; i++, px += step) {
            Py_ssize_t slot = nb_slot(s, px);
            if (slot >= 0) out = append_pair(out, px, s->qty[slot]);
            if (i == span) break;
        }
        return out;
    }
    int64_t *prices = sorted_prices(s, is_bid);
    if (prices == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    for (Py_ssize_t k = 0; out != NULL && k < s->n && !nb_better(is_bid, (int64_t)lim, prices[k]); k++)
        out = append_pair(out, prices[k], nb_get(s, prices[k]));
    PyMem_Free(prices);
    return out;
}

static PyObject *view_new(NativeBook *book, int is_bid);

static PyObject *nb_get_bids(NativeBook *self, void *c) {
    (void)c;
    return view_new(self, 1);
}
static PyObject *nb_get_asks(NativeBook *self, void *c) {
    (void)c;
    return view_new(self, 0);
}
static PyObject *nb_get_best_bid(NativeBook *self, void *c) {
    (void)c;
    return best_obj(&self->side[NB_BIDS]);
}
static PyObject *nb_get_best_ask(NativeBook *self, void *c) {
    (void)c;
    return best_obj(&self->side[NB_ASKS]);
}

static PyGetSetDef nb_getset[] = {
    {"bids", (getter)nb_get_bids, NULL, "the bid side: a read-only mapping price (ticks) -> size (lots), best first", NULL},
    {"asks", (getter)nb_get_asks, NULL, "the ask side: a read-only mapping price (ticks) -> size (lots), best first", NULL},
    {"best_bid", (getter)nb_get_best_bid, NULL, "best bid price in ticks, or None", NULL},
    {"best_ask", (getter)nb_get_best_ask, NULL, "best ask price in ticks, or None", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyMemberDef nb_members[] = {
    {"symbol", T_OBJECT, offsetof(NativeBook, symbol), 0, NULL},
    {"instrument", T_OBJECT, offsetof(NativeBook, instrument), 0, NULL},
    {"updates", T_LONGLONG, offsetof(NativeBook, updates), 0, NULL},
    {"snapshots", T_LONGLONG, offsetof(NativeBook, snapshots), 0, NULL},
    {"ts", T_LONGLONG, offsetof(NativeBook, ts), 0, NULL},
    {"stale", T_BOOL, offsetof(NativeBook, stale), 0, NULL},
    {NULL, 0, 0, 0, NULL}};

static PyMethodDef nb_methods[] = {
    {"apply_level", (PyCFunction)(void (*)(void))nb_apply_level, METH_FASTCALL,
     "apply_level(side, px, qty): set the size at one level (0 deletes it)."},
    {"apply_levels", (PyCFunction)(void (*)(void))nb_apply_levels, METH_FASTCALL,
     "apply_levels(side, levels): apply_level for each (px, qty) in order."},
    {"apply_delta", (PyCFunction)(void (*)(void))nb_apply_delta, METH_FASTCALL,
     "apply_delta(bids, asks): the levels one message changed; all sizes checked first."},
    {"_load", (PyCFunction)(void (*)(void))nb_load, METH_FASTCALL,
     "_load(bids, asks): replace both sides with dicts price -> size (sizes > 0, checked by the caller)."},
    {"clear", (PyCFunction)nb_clear, METH_NOARGS, "clear(): drop every level."},
    {"size_at", (PyCFunction)(void (*)(void))nb_size_at, METH_FASTCALL,
     "size_at(side, px): lots resting at px on side (0 if none)."},
    {"levels_within", (PyCFunction)(void (*)(void))nb_levels_within, METH_FASTCALL,
     "levels_within(side, limit): (price, size) from the best price through limit, best first."},
    {"top_lots", (PyCFunction)(void (*)(void))nb_top_lots_py, METH_FASTCALL,
     "top_lots(side, n): total lots of the best n levels of side (signals.top_lots)."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject NativeBookType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mmkit.core._nbook.NativeBook",
    .tp_basicsize = sizeof(NativeBook),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Storage of an L2 book: per side an int64 hash table price -> size, the best price and a heap.",
    .tp_new = nb_new,
    .tp_init = (initproc)nb_init,
    .tp_dealloc = (destructor)nb_dealloc,
    .tp_methods = nb_methods,
    .tp_members = nb_members,
    .tp_getset = nb_getset,
};

/* ------------------------------------------------------------------ LevelsView */

typedef struct {
    PyObject_HEAD
    NativeBook *book;
    int is_bid;
} LevelsView;

static PyObject *view_new(NativeBook *book, int is_bid) {
    LevelsView *v = PyObject_New(LevelsView, &LevelsViewType);
    if (v == NULL) return NULL;
    Py_INCREF(book);
    v->book = book;
    v->is_bid = is_bid;
    return (PyObject *)v;
}

static void view_dealloc(LevelsView *v) {
    Py_DECREF(v->book);
    PyObject_Free(v);
}

static const NbSide *view_side(LevelsView *v) { return &v->book->side[v->is_bid ? NB_BIDS : NB_ASKS]; }

/* 1 and *qty when key is an int price with a level, 0 when not, -1 on error. */
static int view_lookup(LevelsView *v, PyObject *key, int64_t *qty) {
    if (!PyLong_Check(key)) return 0;
    int overflow;
    long long px = PyLong_AsLongLongAndOverflow(key, &overflow);
    if (px == -1 && PyErr_Occurred()) return -1;
    if (overflow) return 0;
    const NbSide *s = view_side(v);
    Py_ssize_t i = nb_slot(s, (int64_t)px);
    if (i < 0) return 0;
    *qty = s->qty[i];
    return 1;
}

static Py_ssize_t view_len(LevelsView *v) { return view_side(v)->n; }

static PyObject *view_getitem(LevelsView *v, PyObject *key) {
    int64_t qty;
    int rc = view_lookup(v, key, &qty);
    if (rc < 0) return NULL;
    if (rc == 0) {
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    return PyLong_FromLongLong(qty);
}

static int view_contains(LevelsView *v, PyObject *key) {
    int64_t qty;
    return view_lookup(v, key, &qty);
}

static PyObject *view_get(LevelsView *v, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(price, default=None)");
        return NULL;
    }
    int64_t qty;
    int rc = view_lookup(v, args[0], &qty);
    if (rc < 0) return NULL;
    if (rc) return PyLong_FromLongLong(qty);
    PyObject *dflt = nargs == 2 ? args[1] : Py_None;
    Py_INCREF(dflt);
    return dflt;
}

static int cmp_up(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_down(const void *a, const void *b) { return cmp_up(b, a); }

/* The side's prices best first (a new array of s->n, or NULL with MemoryError). */
static int64_t *sorted_prices(const NbSide *s, int is_bid) {
    int64_t *out = PyMem_Malloc((size_t)(s->n + 1) * sizeof(int64_t));
    if (out == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < s->cap; i++)
        if (s->qty[i] != 0) out[k++] = s->px[i];
    qsort(out, (size_t)k, sizeof(int64_t), is_bid ? cmp_down : cmp_up);
    return out;
}

/* 0 = keys, 1 = values, 2 = items; best price first */
static PyObject *view_list(LevelsView *v, int what) {
    const NbSide *s = view_side(v);
    int64_t *prices = sorted_prices(s, v->is_bid);
    if (prices == NULL) return NULL;
    PyObject *out = PyList_New(s->n);
    for (Py_ssize_t k = 0; out != NULL && k < s->n; k++) {
        int64_t px = prices[k], qty = nb_get(s, px);
        PyObject *e;
        if (what == 0) e = PyLong_FromLongLong(px);
        else if (what == 1) e = PyLong_FromLongLong(qty);
        else e = level_pair(px, qty);
        if (e == NULL) Py_CLEAR(out);
        else PyList_SET_ITEM(out, k, e);
    }
    PyMem_Free(prices);
    return out;
}

static PyObject *view_keys(LevelsView *v, PyObject *u) {
    (void)u;
    return view_list(v, 0);
}
static PyObject *view_values(LevelsView *v, PyObject *u) {
    (void)u;
    return view_list(v, 1);
}
static PyObject *view_items(LevelsView *v, PyObject *u) {
    (void)u;
    return view_list(v, 2);
}

static PyObject *view_copy(LevelsView *v, PyObject *u) {
    (void)u;
    PyObject *items = view_list(v, 2);
    if (items == NULL) return NULL;
    PyObject *d = PyDict_New();
    for (Py_ssize_t k = 0; d != NULL && k < PyList_GET_SIZE(items); k++) {
        PyObject *it = PyList_GET_ITEM(items, k);
        if (PyDict_SetItem(d, PyTuple_GET_ITEM(it, 0), PyTuple_GET_ITEM(it, 1)) < 0) Py_CLEAR(d);
    }
    Py_DECREF(items);
    return d;
}

static PyObject *view_iter(LevelsView *v) {
    PyObject *keys = view_list(v, 0);
    if (keys == NULL) return NULL;
    PyObject *it = PyObject_GetIter(keys);
    Py_DECREF(keys);
    return it;
}

static PyObject *view_richcompare(LevelsView *v, PyObject *other, int op) {
    if ((op != Py_EQ && op != Py_NE) || !(PyDict_Check(other) || Py_IS_TYPE(other, &LevelsViewType)))
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *a = view_copy(v, NULL);
    PyObject *b = Py_IS_TYPE(other, &LevelsViewType) ? view_copy((LevelsView *)other, NULL) : (Py_INCREF(other), other);
    PyObject *r = (a && b) ? PyObject_RichCompare(a, b, op) : NULL;
    Py_XDECREF(a);
    Py_XDECREF(b);
    return r;
}

static PyObject *view_repr(LevelsView *v) {
    PyObject *d = view_copy(v, NULL);
    if (d == NULL) return NULL;
    PyObject *r = PyUnicode_FromFormat("LevelsView(%R)", d);
    Py_DECREF(d);
    return r;
}

static PyMappingMethods view_mapping = {(lenfunc)view_len, (binaryfunc)view_getitem, NULL};
static PySequenceMethods view_sequence = {.sq_contains = (objobjproc)view_contains};

static PyMethodDef view_methods[] = {
    {"get", (PyCFunction)(void (*)(void))view_get, METH_FASTCALL, "get(price, default=None)"},
    {"keys", (PyCFunction)view_keys, METH_NOARGS, "prices, best first (a list)"},
    {"values", (PyCFunction)view_values, METH_NOARGS, "sizes, best price first (a list)"},
    {"items", (PyCFunction)view_items, METH_NOARGS, "(price, size) pairs, best first (a list)"},
    {"copy", (PyCFunction)view_copy, METH_NOARGS, "the side as a dict price -> size"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject LevelsViewType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mmkit.core._nbook.LevelsView",
    .tp_basicsize = sizeof(LevelsView),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One side of a NativeBook: a read-only mapping price (ticks) -> size (lots), best price first.",
    .tp_dealloc = (destructor)view_dealloc,
    .tp_as_mapping = &view_mapping,
    .tp_as_sequence = &view_sequence,
    .tp_iter = (getiterfunc)view_iter,
    .tp_richcompare = (richcmpfunc)view_richcompare,
    .tp_repr = (reprfunc)view_repr,
    .tp_methods = view_methods,
    .tp_hash = PyObject_HashNotImplemented,
};

/* ------------------------------------------------------------------ module */

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "mmkit.core._nbook",
                                    "The native order book's storage (NativeL2Book in mmkit.core.book).", -1, NULL,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__nbook(void) {
    if (PyType_Ready(&NativeBookType) < 0 || PyType_Ready(&LevelsViewType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&NativeBookType);
    Py_INCREF(&LevelsViewType);
    if (PyModule_AddObject(m, "NativeBook", (PyObject *)&NativeBookType) < 0 ||
        PyModule_AddObject(m, "LevelsView", (PyObject *)&LevelsViewType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
