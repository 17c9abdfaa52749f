/* The native order book's storage and its level operations, shared by the module that
   defines the type (mmkit/core/_nbook.c) and the compiled engine loop that updates it in
   place (mmkit/core/_fastfeed.c): both compile this one definition, so the layout they
   see is the same.

   Per side the same design as L2Book's dict + heap, without Python objects: an
   open-addressing hash table price -> size (int64 ticks and lots; linear probing,
   Fibonacci hashing, load <= 1/2, backward-shift deletion so no tombstones; size 0 marks
   an empty slot since a stored level always has a size > 0), the cached best price, and a
   lazily pruned binary heap of prices (best on top): a level deleted anywhere but at the
   top stays in the heap until it surfaces there; the heap is rebuilt from the table when
   it grows past 2 * levels + 64 entries.  A level update is O(1) (a new level adds a heap
   push), wherever it sits in the book: real depth diffs touch levels across the whole
   book, so a sorted array (moving everything behind an insert) loses to this on deep
   books.  Sorted reads (LevelsView's keys/items) sort on demand. */
#ifndef MMKIT_NBOOK_IMPL_H
#define MMKIT_NBOOK_IMPL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int64_t *px, *qty; /* the table: cap slots, qty 0 = empty */
    Py_ssize_t cap;    /* a power of two, or 0 before the first level */
    int bits;          /* log2(cap) */
    Py_ssize_t n;      /* levels */
    int64_t *heap;     /* prices, best on top; may hold deleted ones */
    Py_ssize_t hn, hcap;
    int has_best;
    int64_t best;
} NbSide;

typedef struct {
    PyObject_HEAD
    NbSide side[2]; /* 0 = bids, 1 = asks */
    PyObject *symbol;
    PyObject *instrument;
    long long updates;
    long long snapshots;
    long long ts;
    char stale;
} NativeBook;

#define NB_BIDS 0
#define NB_ASKS 1
#define NB_HEAP_SLACK 64

static inline Py_ssize_t nb_home(const NbSide *s, int64_t px) {
    return (Py_ssize_t)(((uint64_t)px * 0x9E3779B97F4A7C15ull) >> (64 - s->bits));
}

/* Slot of px, or -1. */
static inline Py_ssize_t nb_slot(const NbSide *s, int64_t px) {
    if (s->cap == 0) return -1;
    Py_ssize_t mask = s->cap - 1;
    for (Py_ssize_t i = nb_home(s, px);; i = (i + 1) & mask) {
        if (s->qty[i] == 0) return -1;
        if (s->px[i] == px) return i;
    }
}

static inline int64_t nb_get(const NbSide *s, int64_t px) {
    Py_ssize_t i = nb_slot(s, px);
    return i < 0 ? 0 : s->qty[i];
}

/* Place (px, qty) in a table known not to hold px and to have room. */
static inline void nb_place(NbSide *s, int64_t px, int64_t qty) {
    Py_ssize_t mask = s->cap - 1, i = nb_home(s, px);
    while (s->qty[i] != 0) i = (i + 1) & mask;
    s->px[i] = px;
    s->qty[i] = qty;
}

/* A table of at least `want` slots (a power of two >= 16) holding the current levels. */
static inline int nb_resize(NbSide *s, Py_ssize_t want) {
    Py_ssize_t cap = 16;
    int bits = 4;
    while (cap < want) cap *= 2, bits++;
    int64_t *px = PyMem_Calloc((size_t)cap, sizeof(int64_t)), *qty = PyMem_Calloc((size_t)cap, sizeof(int64_t));
    if (px == NULL || qty == NULL) {
        PyMem_Free(px);
        PyMem_Free(qty);
        PyErr_NoMemory();
        return -1;
    }
    int64_t *opx = s->px, *oqty = s->qty;
    Py_ssize_t ocap = s->cap;
    s->px = px;
    s->qty = qty;
    s->cap = cap;
    s->bits = bits;
    for (Py_ssize_t i = 0; i < ocap; i++)
        if (oqty[i] != 0) nb_place(s, opx[i], oqty[i]);
    PyMem_Free(opx);
    PyMem_Free(oqty);
    return 0;
}

/* Empty slot i of a linear-probing table, shifting later entries of its cluster back. */
static inline void nb_unslot(NbSide *s, Py_ssize_t i) {
    Py_ssize_t mask = s->cap - 1, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (s->qty[j] == 0) break;
        Py_ssize_t k = nb_home(s, s->px[j]);
        /* entry j may move to i unless its home lies cyclically in (i, j] */
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->px[i] = s->px[j];
            s->qty[i] = s->qty[j];
            i = j;
        }
    }
    s->qty[i] = 0;
}

/* ---- the heap of prices, best on top (max for bids, min for asks) */

static inline int nb_better(int is_bid, int64_t a, int64_t b) { return is_bid ? a > b : a < b; }

static inline void nb_sift_down(int64_t *h, Py_ssize_t n, Py_ssize_t i, int is_bid) {
    int64_t v = h[i];
    for (;;) {
        Py_ssize_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && nb_better(is_bid, h[c + 1], h[c])) c++;
        if (!nb_better(is_bid, h[c], v)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
}

static inline int nb_heap_push(NbSide *s, int is_bid, int64_t px) {
    if (s->hn == s->hcap) {
        Py_ssize_t cap = s->hcap ? 2 * s->hcap : 32;
        int64_t *h = PyMem_Realloc(s->heap, (size_t)cap * sizeof(int64_t));
        if (h == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        s->heap = h;
        s->hcap = cap;
    }
    Py_ssize_t i = s->hn++;
    while (i > 0) {
        Py_ssize_t p = (i - 1) / 2;
        if (!nb_better(is_bid, px, s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = px;
    return 0;
}

/* The heap rebuilt from the table's prices (drops deleted ones). */
static inline int nb_heap_rebuild(NbSide *s, int is_bid) {
    if (s->hcap < s->n) {
        int64_t *h = PyMem_Realloc(s->heap, (size_t)s->n * sizeof(int64_t));
        if (h == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        s->heap = h;
        s->hcap = s->n;
    }
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < s->cap; i++)
        if (s->qty[i] != 0) s->heap[k++] = s->px[i];
    s->hn = k;
    for (Py_ssize_t i = k / 2 - 1; i >= 0; i--) nb_sift_down(s->heap, k, i, is_bid);
    return 0;
}

/* The best price after the best level was deleted: pop deleted prices off the top. */
static inline void nb_next_best(NbSide *s, int is_bid) {
    while (s->hn > 0) {
        int64_t top = s->heap[0];
        if (nb_slot(s, top) >= 0) {
            s->best = top;
            return;
        }
        s->heap[0] = s->heap[--s->hn];
        if (s->hn > 0) nb_sift_down(s->heap, s->hn, 0, is_bid);
    }
    s->has_best = 0;
}

/* nb_set's rarer cases, out of line: delete the level in slot i (qty == 0), or insert
   a new level (i < 0). */
static int nb_set_rare(NbSide *s, int is_bid, int64_t px, int64_t qty, Py_ssize_t i) {
    if (i >= 0) {
        nb_unslot(s, i);
        s->n--;
        if (s->has_best && s->best == px) nb_next_best(s, is_bid);
        return 0;
    }
    if (!qty) return 0;
    if (2 * (s->n + 1) > s->cap && nb_resize(s, 2 * (s->n + 1)) < 0) return -1;
    nb_place(s, px, qty);
    s->n++;
    if (nb_heap_push(s, is_bid, px) < 0) return -1;
    if (s->hn > 2 * s->n + NB_HEAP_SLACK && nb_heap_rebuild(s, is_bid) < 0) return -1;
    if (!s->has_best || nb_better(is_bid, px, s->best)) {
        s->has_best = 1;
        s->best = px;
    }
    return 0;
}

/* Set the size at px (qty >= 0; 0 deletes the level), as L2Book.apply_level.  0, or -1
   with MemoryError.  Inlined: most updates change the size of a level that exists. */
static inline __attribute__((always_inline)) int nb_set(NbSide *s, int is_bid, int64_t px, int64_t qty) {
    Py_ssize_t i = nb_slot(s, px);
    if (i >= 0 && qty) {
        s->qty[i] = qty;
        return 0;
    }
    return nb_set_rare(s, is_bid, px, qty, i);
}

/* The best price of a side: 1 with *px set, 0 when the side is empty. */
static inline int nb_best(const NbSide *s, int64_t *px) {
    if (!s->has_best) return 0;
    *px = s->best;
    return 1;
}

/* The lots of the best n levels of a side (signals.top_lots) in *out: walks outward from
   the best price one tick at a time (the dense top of a crypto book).  1 = done, 0 = the
   side is too sparse for the walk (4 ticks per level) or the sum leaves 64 bits: the
   caller sums the sorted prices instead. */
static inline int nb_top_lots(const NbSide *s, int is_bid, int64_t n, int64_t *out) {
    int64_t total = 0;
    if (n <= 0 || s->n == 0) {
        *out = 0;
        return 1;
    }
    if (n >= s->n) {
        for (Py_ssize_t i = 0; i < s->cap; i++)
            if (s->qty[i] != 0 && __builtin_add_overflow(total, s->qty[i], &total)) return 0;
        *out = total;
        return 1;
    }
    int64_t px = s->best, step = is_bid ? -1 : 1, found = 0;
    for (Py_ssize_t k = 0; k < 4 * s->n + n; k++) {
        int64_t q = nb_get(s, px);
        if (q != 0) {
            if (__builtin_add_overflow(total, q, &total)) return 0;
            if (++found == n) {
                *out = total;
                return 1;
            }
        }
        if (__builtin_add_overflow(px, step, &px)) return 0;
    }
    return 0;
}

static inline void nb_clear_side(NbSide *s) {
    if (s->cap) memset(s->qty, 0, (size_t)s->cap * sizeof(int64_t));
    s->n = 0;
    s->hn = 0;
    s->has_best = 0;
}

static inline void nb_free_side(NbSide *s) {
    PyMem_Free(s->px);
    PyMem_Free(s->qty);
    PyMem_Free(s->heap);
    memset(s, 0, sizeof *s);
}

#endif
