/* mmkit.core._fastfeed: Engine.feed over columnar rows, in C, for the common steps.

Why: a backtest from the cache spent most of its time on per-event Python work that moves
only a little state: building an event object, the engine loop's scheduling checks, the
simulator's dispatch, two book updates (the fill simulator's exchange-time book and the
strategy's local book), the signals' touch and trade updates and the ledger's mark.  This
module runs the same loop (Engine.feed, FillSimulator.on_market, Engine._on_local_market)
directly over the cache columns and changes the same Python objects the same way, and
hands every step that is not a common one back to the Python method that owns it, with
the event rebuilt (Engine._row_event):

  done here                                  handed to the Python method
  -----------------------------------------  ---------------------------------------------
  the local FIFO (a ring of row numbers,     Engine._on_report for fills, rejects, amend
    back into Engine._local on return) and     acks, late or duplicate reports (and for
    the clocks (written to Engine._now and     every report while orders are traced)
    FillSimulator.now_ns before Python runs)
  Engine._collect's steps (the sim's         (a patched _collect, drain_reports or
    reports onto the engine's report heap)     _push_reports)
  a create's ack and a cancel confirmation
    (the order manager's state, its finish,
    the engine's order record)
  the simulator's arrivals: a create that    FillSimulator._on_amend, a create that
    rests (checks, queue position, the ack),   crosses or is refused, an unknown cancel
    a cancel of a resting order
  a delta on the sim book (native), with     FillSimulator.on_market (a fractional queue
    the queue ahead of our orders              estimate, a quote before depth, snapshots,
    (queue.on_depth; risk_averse/optimistic    gaps, negative sizes), FillSimulator._fill
    in C), forgetting matched crossing sizes   (each fill: the exact fee),
  trades/quotes reaching no order of ours;     FillSimulator._check_cross (a level that
    FillSimulator._trade's steps for a print   reaches our prices)
    at or through our prices
  a delta on the local book (native)         Engine._on_local_market (anything else)
  SymbolSignals.on_touch/on_trade (EWMA vol, Ledger.sample (an equity point)
    trade intensity, the last mid), the
    markouts' maturing (MarkoutTracker)
  Ledger.mark_mid2                           another strategy's quotes, a reconcile the C
  a decision's own steps (see decide below),   copy does not cover (amend policy, tail
    the stock fixed strategy's quotes, the     batch, pending timeouts due, an unclean
    position mark's lot value (linear), the    ladder, a budget below the resting orders),
    cancel_replace reconcile with the stock    the gates' other states, other batches
    gate chain (kill switch, circuit breaker,  (Engine._send), PositionBook.update_mark
    throttle in their common state), sending
    creates and cancels (Engine._send,
    FillSimulator.submit)

Float arithmetic is written in the Python expressions' order (IEEE doubles, libm log and
exp as math.log/math.exp use), so results are bit-identical; tests run backtests both
ways and require byte-identical artifacts.  Attributes of __slots__ objects are read at
their slot offsets (resolved per type on first use), others through getattr.

run(engine, sim, ctx, cols, levels, lo, hi) -> rows consumed
  ctx = (runtimes, sim_syms, materialize, shift_ns, interval_ns, cross_fills, local,
         reports, arrivals, sim_reports, ledger, on_depth, ln2, stock_decide, stock_alloc,
         make_signal_snapshot, make_quote_context, OPEN, PARTIALLY_FILLED, plain_trades,
         make_desired_quote, stock_collect, report_kit, arrival_kit, reconcile_kit, send_kit, depth_min,
         stock_markouts)
         (Engine.feed_rows builds it)
    runtimes  per symbol id: (rt, book, signals, ledger_book, stock_orders, fixed_terms, lot_unit)
              or None (not traded)
    sim_syms  per symbol id: the simulator's per-symbol state or None
  cols, levels: the cache's 8 event columns and 2 level columns (buffers).
  Pure: no I/O. */

#include "_nbook_impl.h"
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>

enum { K_SNAPSHOT = 0, K_DELTA = 1, K_TRADE = 2, K_QUOTE = 3, K_SEQ_GAP = 4 };
#define BUY 1

/* ------------------------------------------------------------------ ints */

/* PyLong_AsLongLong with a fast path for exact ints of up to three 30-bit digits below
   2**63 (prices in ticks and times in ns do not fit one digit, and the generic call
   converts those via a byte array).  CPython 3.11's digit layout; other versions use the generic call. */
static inline int64_t as_i64(PyObject *v) {
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && PYLONG_BITS_IN_DIGIT == 30
    if (PyLong_CheckExact(v)) {
        Py_ssize_t size = Py_SIZE(v);
        const digit *d = ((PyLongObject *)v)->ob_digit;
        switch (size) {
            case 0: return 0;
            case 1: return (int64_t)d[0];
            case -1: return -(int64_t)d[0];
            case 2: return (int64_t)(((uint64_t)d[1] << PyLong_SHIFT) | d[0]);
            case -2: return -(int64_t)(((uint64_t)d[1] << PyLong_SHIFT) | d[0]);
            case 3:
            case -3:
                if (d[2] < 8) { /* below 2**63: times in ns */
                    int64_t m = (int64_t)(((uint64_t)d[2] << (2 * PyLong_SHIFT)) | ((uint64_t)d[1] << PyLong_SHIFT) | d[0]);
                    return size < 0 ? -m : m;
                }
                break;
            default: break;
        }
    }
#endif
    return PyLong_AsLongLong(v);
}

/* ------------------------------------------------------------------ attribute access */

typedef struct {
    const char *text;
    PyObject *name;
    PyTypeObject *type;
    Py_ssize_t off; /* slot offset for `type`, -1: use getattr/setattr */
} Attr;

#define ATTR(var, text) static Attr var = {text, NULL, NULL, -1}

static void attr_resolve(Attr *a, PyTypeObject *tp) {
    a->type = tp;
    a->off = -1;
    PyObject *d = _PyType_Lookup(tp, a->name);
    if (d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX && !(m->flags & READONLY)) a->off = m->offset;
    }
}

/* obj.attr (new reference) */
static PyObject *aget(Attr *a, PyObject *obj) {
    if (Py_TYPE(obj) != a->type) attr_resolve(a, Py_TYPE(obj));
    if (a->off >= 0) {
        PyObject *v = *(PyObject **)((char *)obj + a->off);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
    }
    return PyObject_GetAttr(obj, a->name);
}

/* obj.attr = v (v borrowed) */
static int aset(Attr *a, PyObject *obj, PyObject *v) {
    if (Py_TYPE(obj) != a->type) attr_resolve(a, Py_TYPE(obj));
    if (a->off >= 0) {
        PyObject **slot = (PyObject **)((char *)obj + a->off);
        PyObject *old = *slot;
        Py_INCREF(v);
        *slot = v;
        Py_XDECREF(old);
        return 0;
    }
    return PyObject_SetAttr(obj, a->name, v);
}

static int get_i64(Attr *a, PyObject *obj, int64_t *out) {
    PyObject *v = aget(a, obj);
    if (v == NULL) return -1;
    *out = as_i64(v);
    Py_DECREF(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* an int attribute that may be None: 1 with *out set, 0 for None, -1 on error */
static int get_opt_i64(Attr *a, PyObject *obj, int64_t *out) {
    PyObject *v = aget(a, obj);
    if (v == NULL) return -1;
    if (v == Py_None) {
        Py_DECREF(v);
        return 0;
    }
    *out = as_i64(v);
    Py_DECREF(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 1;
}

static int get_f64(Attr *a, PyObject *obj, double *out) {
    PyObject *v = aget(a, obj);
    if (v == NULL) return -1;
    *out = PyFloat_AsDouble(v);
    Py_DECREF(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static int set_i64(Attr *a, PyObject *obj, int64_t value) {
    PyObject *v = PyLong_FromLongLong(value);
    if (v == NULL) return -1;
    int rc = aset(a, obj, v);
    Py_DECREF(v);
    return rc;
}

static int set_f64(Attr *a, PyObject *obj, double value) {
    PyObject *v = PyFloat_FromDouble(value);
    if (v == NULL) return -1;
    int rc = aset(a, obj, v);
    Py_DECREF(v);
    return rc;
}

static int get_truth(Attr *a, PyObject *obj) {
    PyObject *v = aget(a, obj);
    if (v == NULL) return -1;
    int t = PyObject_IsTrue(v);
    Py_DECREF(v);
    return t;
}

/* a sized attribute's length (a dict, a list) */
static Py_ssize_t get_len(Attr *a, PyObject *obj) {
    PyObject *v = aget(a, obj);
    if (v == NULL) return -1;
    Py_ssize_t n = PyObject_Length(v);
    Py_DECREF(v);
    return n;
}

ATTR(A_now, "_now");
ATTR(A_e_seq, "_seq");
ATTR(A_paused, "paused");
ATTR(A_last_ts, "_last_ts");
ATTR(A_counters, "counters");
ATTR(A_c_events, "events");
ATTR(A_c_trades, "trades");
ATTR(A_c_book_events, "book_events");
ATTR(A_sig_last_mid2, "_last_mid2");
ATTR(A_sig_vol, "vol");
ATTR(A_sig_intensity, "intensity");
ATTR(A_sig_markouts, "markouts");
ATTR(A_rt_last_mid2, "last_mid2");
ATTR(A_rt_next_decision, "next_decision_ns");
ATTR(A_led_next_due, "_next_due");
ATTR(A_lb_mark_src, "mark_src");
ATTR(A_lb_mark_px, "mark_px");
ATTR(A_lb_mark_v, "mark_v");
ATTR(A_lb_mark_ts, "mark_ts_ns");
ATTR(A_st_n, "n");
ATTR(A_st_book, "book");
ATTR(A_st_bids, "bids");
ATTR(A_st_asks, "asks");
ATTR(A_st_max_bid, "max_bid");
ATTR(A_st_min_ask, "min_ask");
ATTR(A_st_used_bid, "used_bid");
ATTR(A_st_used_ask, "used_ask");
ATTR(A_st_depth_seen, "depth_seen");
ATTR(A_sim_now, "now_ns");
ATTR(A_o_ahead, "ahead");
ATTR(A_o_traded, "traded");
ATTR(A_o_qty, "qty");
ATTR(A_o_filled, "filled");
ATTR(A_ti_last_ts, "last_ts");
ATTR(A_ti_half_life, "half_life_ns");
ATTR(A_ti_count, "_count");
ATTR(A_ti_buy, "_buy");
ATTR(A_ti_sell, "_sell");
ATTR(A_ti_trades, "trades");
ATTR(A_v_last_ts, "last_ts");
ATTR(A_v_half_life, "half_life_ns");
ATTR(A_v_last_log_mid, "last_log_mid");
ATTR(A_v_var_sum, "_var_sum");
ATTR(A_v_weight, "_weight");
ATTR(A_v_samples, "samples");
ATTR(A_v_rejected, "rejected");
ATTR(A_m_pending, "_pending");
ATTR(A_m_mid2, "_mid2");

static Attr *ALL_ATTRS[] = {
    &A_now, &A_e_seq, &A_paused, &A_last_ts, &A_counters, &A_c_events, &A_c_trades, &A_c_book_events,
    &A_sig_last_mid2, &A_sig_vol, &A_sig_intensity, &A_sig_markouts, &A_rt_last_mid2,
    &A_rt_next_decision, &A_led_next_due, &A_lb_mark_src, &A_lb_mark_px, &A_lb_mark_v, &A_lb_mark_ts, &A_st_n,
    &A_st_book, &A_st_bids, &A_st_asks, &A_st_max_bid, &A_st_min_ask, &A_st_used_bid, &A_st_used_ask,
    &A_st_depth_seen, &A_sim_now, &A_o_ahead, &A_o_traded, &A_o_qty, &A_o_filled, &A_ti_last_ts, &A_ti_half_life,
    &A_ti_count, &A_ti_buy,
    &A_ti_sell, &A_ti_trades, &A_v_last_ts, &A_v_half_life, &A_v_last_log_mid, &A_v_var_sum, &A_v_weight,
    &A_v_samples, &A_v_rejected, &A_m_pending, &A_m_mid2, NULL};

static PyObject *M_process_arrivals, *M_on_report, *M_on_trade, *M_on_touch, *M_on_mid, *M_mark_mid2, *M_sample, *M_decide, *M_on_local,
    *M_collect, *M_on_market, *M_check_cross, *M_popleft, *M_append;

/* ------------------------------------------------------------------ the context */

typedef struct {
    const int8_t *kind;
    const uint16_t *sym;
    const int64_t *ts, *rts, *a, *b, *c, *lpx, *lqty;
    Py_ssize_t rows, nlevels, nsym;
    PyObject *engine, *sim, *ledger, *runtimes, *sims, *materialize, *on_depth;
    PyObject *local, *reports, *arrivals, *sim_reports, *popleft, *append;
    int64_t shift, interval;
    double ln2;
    int cross_fills;
    Py_ssize_t trades, book_events;
    /* decisions */
    int stock_decide, stock_alloc, plain_trades, stock_collect;
    PyObject *make_snapshot, *make_context, *make_desired, *st_open, *st_partial;
    PyObject *report_kit; /* ctx[22]: the stock report steps' types and constants, or NULL */
    PyObject *arrival_kit; /* ctx[23]: the stock arrival steps' types and constants, or NULL */
    PyObject *reconcile_kit; /* ctx[24]: the stock reconcile steps' types and constants, or NULL */
    PyObject *send_kit; /* ctx[25]: the stock send steps' types and constants, or NULL */
    int stock_markouts; /* ctx[27]: MarkoutTracker.on_mid, advance and _mature are the stock ones */
    int depth_min; /* ctx[26]: the queue's on_depth is min(ahead, new size) (the stock risk_averse/optimistic) */
    /* the rows this call queued for local delivery: a ring of (local time, row) that
       follows whatever Engine._local held on entry and goes back into it on exit */
    int64_t *rq_when, *rq_row;
    Py_ssize_t rq_cap, rq_head, rq_len;
    int dq_drained;
    /* the two clocks the loop moves on nearly every row (Engine._now, FillSimulator.now_ns),
       written to their Python slots only before Python code runs (clock_sync) */
    int64_t now, sim_now;
    int now_known, now_dirty, sim_now_dirty;
} Ctx;

static Ctx *CUR; /* the innermost running loop (run() saves and restores it) */

/* obj.name(*objs, *ints), ints passed as Python ints */
/* The deferred clock writes, done (Python may read them), and Engine._now forgotten
   (Python may move it: read it again after). */
static int clock_sync(void) {
    Ctx *x = CUR;
    if (x == NULL) return 0;
    x->now_known = 0;
    if (x->now_dirty) {
        x->now_dirty = 0;
        if (set_i64(&A_now, x->engine, x->now) < 0) return -1;
    }
    if (x->sim_now_dirty) {
        x->sim_now_dirty = 0;
        if (set_i64(&A_sim_now, x->sim, x->sim_now) < 0) return -1;
    }
    return 0;
}

/* Engine._now as the loop knows it. */
static int now_get(Ctx *x, int64_t *now) {
    if (!x->now_known) {
        if (get_i64(&A_now, x->engine, &x->now) < 0) return -1;
        x->now_known = 1;
    }
    *now = x->now;
    return 0;
}

/* Engine._now = v and FillSimulator.now_ns = v, deferred. */
static void now_set(Ctx *x, int64_t v) {
    x->now = v;
    x->now_known = x->now_dirty = 1;
}
static void sim_now_set(Ctx *x, int64_t v) {
    x->sim_now = v;
    x->sim_now_dirty = 1;
}

static int call_method(PyObject *obj, PyObject *name, PyObject **objs, int nobj, const int64_t *ints, int nint) {
    if (clock_sync() < 0) return -1;
    PyObject *args[8];
    int n = 0;
    args[n++] = obj;
    for (int i = 0; i < nobj; i++) args[n++] = objs[i];
    int made = n;
    for (int i = 0; i < nint; i++) {
        PyObject *v = PyLong_FromLongLong(ints[i]);
        if (v == NULL) {
            for (int j = made; j < n; j++) Py_DECREF(args[j]);
            return -1;
        }
        args[n++] = v;
    }
    PyObject *r = PyObject_VectorcallMethod(name, args, (size_t)n | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    for (int j = made; j < n; j++) Py_DECREF(args[j]);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* Row r rebuilt as an event object (new reference). */
static PyObject *materialize(Ctx *x, Py_ssize_t r) {
    PyObject *i = PyLong_FromSsize_t(r);
    if (i == NULL) return NULL;
    PyObject *ev = PyObject_CallOneArg(x->materialize, i);
    Py_DECREF(i);
    return ev;
}

/* obj.name(event of row r, *ints) */
static int call_with_row(Ctx *x, PyObject *obj, PyObject *name, Py_ssize_t r, const int64_t *ints, int nint) {
    PyObject *ev = materialize(x, r);
    if (ev == NULL) return -1;
    int rc = call_method(obj, name, &ev, 1, ints, nint);
    Py_DECREF(ev);
    return rc;
}

/* Head time of a heap/deque of (time, ...) tuples: 1 with *t set, 0 when empty, -1 on error. */
static int heap_head(PyObject *heap, int64_t *t) {
    if (PyList_GET_SIZE(heap) == 0) return 0;
    PyObject *item = PyList_GET_ITEM(heap, 0);
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 1) {
        PyErr_SetString(PyExc_TypeError, "heap entries must be (time, ...) tuples");
        return -1;
    }
    *t = as_i64(PyTuple_GET_ITEM(item, 0));
    return (*t == -1 && PyErr_Occurred()) ? -1 : 1;
}

static int deque_head(PyObject *dq, int64_t *t) {
    Py_ssize_t n = PyObject_Length(dq);
    if (n <= 0) return (int)n;
    PyObject *item = PySequence_GetItem(dq, 0);
    if (item == NULL) return -1;
    int rc = 1;
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 1) {
        PyErr_SetString(PyExc_TypeError, "queue entries must be (time, ...) tuples");
        rc = -1;
    } else {
        *t = as_i64(PyTuple_GET_ITEM(item, 0));
        if (*t == -1 && PyErr_Occurred()) rc = -1;
    }
    Py_DECREF(item);
    return rc;
}

/* The local FIFO: Engine._local's entries first (queued before this call), then this
   call's ring.  Nothing else touches Engine._local while the loop runs (Engine.feed and
   Engine._advance are its only other users), so the order is the one feed() keeps. */
static int local_head(Ctx *x, int64_t *t) {
    if (!x->dq_drained) { /* once empty, Engine._local stays empty until this call returns */
        int rc = deque_head(x->local, t);
        if (rc != 0) return rc;
        x->dq_drained = 1;
    }
    if (x->rq_len == 0) return 0;
    *t = x->rq_when[x->rq_head];
    return 1;
}

static int local_push(Ctx *x, int64_t when, Py_ssize_t row) {
    if (x->rq_len == x->rq_cap) {
        Py_ssize_t cap = x->rq_cap ? 2 * x->rq_cap : 256;
        int64_t *w = PyMem_Malloc(sizeof(int64_t) * (size_t)cap), *r = PyMem_Malloc(sizeof(int64_t) * (size_t)cap);
        if (w == NULL || r == NULL) {
            PyMem_Free(w);
            PyMem_Free(r);
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < x->rq_len; i++) {
            Py_ssize_t j = (x->rq_head + i) % x->rq_cap;
            w[i] = x->rq_when[j];
            r[i] = x->rq_row[j];
        }
        PyMem_Free(x->rq_when);
        PyMem_Free(x->rq_row);
        x->rq_when = w, x->rq_row = r, x->rq_cap = cap, x->rq_head = 0;
    }
    Py_ssize_t j = (x->rq_head + x->rq_len) % x->rq_cap;
    x->rq_when[j] = when;
    x->rq_row[j] = row;
    x->rq_len++;
    return 0;
}

/* The ring's entries appended to Engine._local as (time, row) tuples, in order (on every
   exit, errors included, so Engine.close delivers them); the ring is freed. */
static int local_flush(Ctx *x) {
    int rc = 0;
    for (; rc == 0 && x->rq_len > 0; x->rq_len--) {
        PyObject *item = Py_BuildValue("(Ln)", (long long)x->rq_when[x->rq_head], (Py_ssize_t)x->rq_row[x->rq_head]);
        PyObject *res = item ? PyObject_CallOneArg(x->append, item) : NULL;
        Py_XDECREF(item);
        if (res == NULL) rc = -1;
        Py_XDECREF(res);
        x->rq_head = (x->rq_head + 1) % x->rq_cap;
    }
    PyMem_Free(x->rq_when);
    PyMem_Free(x->rq_row);
    x->rq_when = x->rq_row = NULL;
    x->rq_cap = x->rq_len = x->rq_head = 0;
    return rc;
}

/* Is an exchange arrival or a report due at or before t?  1/0, -1 on error. */
static int due_by(Ctx *x, int64_t t) {
    int64_t h;
    int rc = heap_head(x->arrivals, &h);
    if (rc < 0) return -1;
    if (rc && h <= t) return 1;
    rc = heap_head(x->reports, &h);
    if (rc < 0) return -1;
    return rc && h <= t;
}

/* A book row whose level range lies outside the level columns (the row builder raises
   the cache's own error for it), or one with a negative size (the book raises). */
static int odd_levels(Ctx *x, Py_ssize_t r) {
    int64_t first = x->a[r], nb = x->b[r], na = x->c[r];
    if (first < 0 || nb < 0 || na < 0 || first > x->nlevels || nb > x->nlevels - first || na > x->nlevels - first - nb)
        return 1;
    for (int64_t i = first; i < first + nb + na; i++)
        if (x->lqty[i] < 0) return 1;
    return 0;
}

/* ------------------------------------------------------------------ books */

static PyTypeObject *NB_TYPE; /* mmkit.core._nbook.NativeBook, set at import */
static PyObject *heappop_fn;   /* heapq.heappop (the engine's report heap) */
static PyObject *heappush_fn;  /* heapq.heappush */
static PyObject *M_fill, *S_maker, *S_fill; /* FillSimulator._fill and its liquidity and op strings */

/* The NativeBook behind a book object (Engine.feed_rows makes every book native). */
static NativeBook *native(PyObject *book) {
    if (!PyObject_TypeCheck(book, NB_TYPE)) {
        PyErr_SetString(PyExc_TypeError, "feed_rows needs NativeL2Book books");
        return NULL;
    }
    return (NativeBook *)book;
}

/* The prices of our orders on one side (the keys of `mine`, a dict price -> orders):
   *n of them in buf (at most cap); 1 when they fit, 0 when there are more (the caller
   looks each level up in the dict instead), -1 on error. */
static int our_prices(PyObject *mine, int64_t *buf, int cap, int *n) {
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    *n = 0;
    if (PyDict_GET_SIZE(mine) > cap) return 0;
    while (PyDict_Next(mine, &pos, &k, &v)) {
        int64_t px = as_i64(k);
        if (px == -1 && PyErr_Occurred()) return -1;
        buf[(*n)++] = px;
    }
    return 1;
}

#define OURS_CAP 32

/* Is px one of ours?  1/0, -1 on error. */
static int is_ours(PyObject *mine, const int64_t *ours, int n_ours, int fits, int64_t px) {
    if (fits) {
        for (int j = 0; j < n_ours; j++)
            if (ours[j] == px) return 1;
        return 0;
    }
    PyObject *p = PyLong_FromLongLong(px);
    if (p == NULL) return -1;
    int in = PyDict_Contains(mine, p);
    Py_DECREF(p);
    return in;
}

/* FillSimulator._delta_at_ours's queue update for the orders at one price: each order's
   ahead = on_depth(ahead, prev, new, traded) and traded = 0. */
static int queue_update(Ctx *x, PyObject *mine, int64_t px, int64_t prev, int64_t qty) {
    PyObject *p = PyLong_FromLongLong(px);
    if (p == NULL) return -1;
    PyObject *orders = PyDict_GetItemWithError(mine, p); /* borrowed */
    Py_DECREF(p);
    if (orders == NULL) return PyErr_Occurred() ? -1 : 0;
    if (!PyList_Check(orders)) {
        PyErr_SetString(PyExc_TypeError, "orders at a price must be a list");
        return -1;
    }
    Py_INCREF(orders);
    PyObject *po = PyLong_FromLongLong(prev), *q = po ? PyLong_FromLongLong(qty) : NULL;
    int rc = q ? 0 : -1;
    for (Py_ssize_t j = 0; rc == 0 && j < PyList_GET_SIZE(orders); j++) {
        PyObject *o = PyList_GET_ITEM(orders, j);
        Py_INCREF(o);
        PyObject *ahead = aget(&A_o_ahead, o);
        PyObject *traded = ahead ? aget(&A_o_traded, o) : NULL;
        PyObject *res = NULL;
        if (traded != NULL && x->depth_min) { /* the stock risk_averse/optimistic on_depth */
            int le = PyObject_RichCompareBool(ahead, q, Py_LE);
            res = le < 0 ? NULL : Py_NewRef(le ? ahead : q);
        } else if (traded != NULL) {
            PyObject *args[4] = {ahead, po, q, traded};
            res = clock_sync() < 0 ? NULL : PyObject_Vectorcall(x->on_depth, args, 4, NULL);
        }
        if (res == NULL || aset(&A_o_ahead, o, res) < 0) rc = -1;
        if (rc == 0) {
            PyObject *zero = PyLong_FromLong(0);
            rc = zero ? aset(&A_o_traded, o, zero) : -1;
            Py_XDECREF(zero);
        }
        Py_XDECREF(res);
        Py_XDECREF(ahead);
        Py_XDECREF(traded);
        Py_DECREF(o);
    }
    Py_XDECREF(po);
    Py_XDECREF(q);
    Py_DECREF(orders);
    return rc;
}

/* One side of a delta row onto a native book side (L2Book.apply_levels), and when `mine`
   (our orders by price) is given, FillSimulator._delta_at_ours's queue update at our
   prices (size before, then the update, then the orders there). */
static int apply_side_nb(Ctx *x, NativeBook *b, int is_bid, const int64_t *px, const int64_t *qty, int64_t n,
                         PyObject *mine) {
    NbSide *s = &b->side[is_bid ? NB_BIDS : NB_ASKS];
    if (mine == NULL) {
        for (int64_t i = 0; i < n; i++)
            if (nb_set(s, is_bid, px[i], qty[i]) < 0) return -1;
        return 0;
    }
    int64_t ours[OURS_CAP];
    int n_ours;
    int fits = our_prices(mine, ours, OURS_CAP, &n_ours);
    if (fits < 0) return -1;
    for (int64_t i = 0; i < n; i++) {
        int in = is_ours(mine, ours, n_ours, fits, px[i]);
        if (in < 0) return -1;
        int64_t prev = in ? nb_get(s, px[i]) : 0;
        if (nb_set(s, is_bid, px[i], qty[i]) < 0) return -1;
        if (in && queue_update(x, mine, px[i], prev, qty[i]) < 0) return -1;
    }
    return 0;
}

/* L2Book.apply_delta (+ the queue update at our prices when mine_b/mine_a are given) for
   a delta row already checked by odd_levels. */
static int apply_delta_nb(Ctx *x, NativeBook *b, Py_ssize_t r, PyObject *mine_b, PyObject *mine_a) {
    int64_t first = x->a[r], nb = x->b[r], na = x->c[r];
    if (apply_side_nb(x, b, 1, x->lpx + first, x->lqty + first, nb, mine_b) < 0) return -1;
    if (apply_side_nb(x, b, 0, x->lpx + first + nb, x->lqty + first + nb, na, mine_a) < 0) return -1;
    b->updates += nb + na;
    return 0;
}

/* Does any price of the row's side have orders of ours in `mine`?  1/0, -1 on error. */
static int hits(PyObject *mine, const int64_t *px, int64_t n) {
    if (PyDict_GET_SIZE(mine) == 0 || n == 0) return 0;
    int64_t ours[OURS_CAP];
    int n_ours;
    int fits = our_prices(mine, ours, OURS_CAP, &n_ours);
    if (fits < 0) return -1;
    for (int64_t i = 0; i < n; i++) {
        int in = is_ours(mine, ours, n_ours, fits, px[i]);
        if (in) return in;
    }
    return 0;
}

/* ------------------------------------------------------------------ the exchange side */

/* FillSimulator._delta's cross condition after the book update.  1/0, -1 on error. */
static int crossing(NativeBook *b, PyObject *st) {
    int64_t v, lim;
    if (nb_best(&b->side[NB_ASKS], &v)) {
        if (get_i64(&A_st_max_bid, st, &lim) < 0) return -1;
        if (v <= lim) return 1;
    }
    if (nb_best(&b->side[NB_BIDS], &v)) {
        if (get_i64(&A_st_min_ask, st, &lim) < 0) return -1;
        if (v >= lim) return 1;
    }
    Py_ssize_t n = get_len(&A_st_used_ask, st);
    if (n != 0) return n < 0 ? -1 : 2;
    n = get_len(&A_st_used_bid, st);
    return n < 0 ? -1 : n > 0 ? 2 : 0;
}

/* FillSimulator._check_cross when neither side reaches our prices: the sizes we matched
   against crossing levels are forgotten (used_ask, used_bid cleared) */
static int forget_used(PyObject *st) {
    Attr *as[2] = {&A_st_used_ask, &A_st_used_bid};
    for (int i = 0; i < 2; i++) {
        PyObject *d = aget(as[i], st);
        if (d == NULL) return -1;
        if (!PyDict_CheckExact(d)) {
            Py_DECREF(d);
            PyErr_SetString(PyExc_TypeError, "the matched crossing sizes must be a dict");
            return -1;
        }
        PyDict_Clear(d);
        Py_DECREF(d);
    }
    return 0;
}

/* FillSimulator._trade for a print exactly at our best price on the side it hits, when it
   fills nothing: the queue ahead of our orders there shrinks by the print (risk_averse and
   the other int queues; no toxic sweeps, no touch fills).  Checks first, changes after:
   1 = done here, 0 = the print may fill or is not this plain case (Python does all of
   it), -1 = error. */
#define TRADE_ORDERS_CAP 16
#define TRADE_PRICES_CAP 8

/* FillSimulator._trade for a print that reaches our orders (no touch fills, no toxic
   sweeps, int queue estimates): our prices at or through the print, most aggressive
   first; at a price the print went through every order's queue is gone, at the print's
   price the queue ahead goes first; once the print got past it an order fills
   (FillSimulator._fill, Python).  1 = done, 0 = Python does the whole print (nothing
   written), -1 = error. */
static int plain_trade(Ctx *x, PyObject *st, int hit_bids, int64_t p, int64_t qty, int64_t ts) {
    if (!x->plain_trades) return 0;
    PyObject *mine = aget(hit_bids ? &A_st_bids : &A_st_asks, st);
    if (mine == NULL) return -1;
    int rc = PyDict_CheckExact(mine) ? 1 : 0;
    int64_t prices[TRADE_PRICES_CAP];
    PyObject *lists[TRADE_PRICES_CAP];
    int np = 0;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (rc == 1 && PyDict_Next(mine, &pos, &k, &v)) {
        int64_t q = as_i64(k);
        if (q == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            rc = 0;
        } else if (hit_bids ? q >= p : q <= p) {
            if (np == TRADE_PRICES_CAP || !PyList_CheckExact(v)) rc = 0;
            else {
                int at = np++; /* insertion sort, most aggressive first (_trade's sorted order) */
                while (at > 0 && (hit_bids ? prices[at - 1] < q : prices[at - 1] > q)) {
                    prices[at] = prices[at - 1];
                    lists[at] = lists[at - 1];
                    at--;
                }
                prices[at] = q;
                lists[at] = v;
            }
        }
    }
    /* _trade walks a copy of each price's orders (a complete fill removes the order) */
    PyObject *snaps[TRADE_PRICES_CAP] = {NULL};
    for (int pi = 0; rc == 1 && pi < np; pi++) {
        snaps[pi] = PyList_GetSlice(lists[pi], 0, PyList_GET_SIZE(lists[pi]));
        if (snaps[pi] == NULL) rc = -1;
        else if (PyList_GET_SIZE(snaps[pi]) > TRADE_ORDERS_CAP) rc = 0;
    }
    /* first the reads and checks (nothing written: a 0 hands the whole print to Python);
       a fill changes only its own order, so the values read here hold for the walk */
    int64_t vals[TRADE_PRICES_CAP][TRADE_ORDERS_CAP][4]; /* ahead, traded, qty, filled */
    for (int pi = 0; rc == 1 && pi < np; pi++) {
        for (Py_ssize_t i = 0; rc == 1 && i < PyList_GET_SIZE(snaps[pi]); i++) {
            PyObject *o = PyList_GET_ITEM(snaps[pi], i);
            PyObject *got[4] = {aget(&A_o_ahead, o), NULL, NULL, NULL};
            if (got[0]) got[1] = aget(&A_o_traded, o);
            if (got[1]) got[2] = aget(&A_o_qty, o);
            if (got[2]) got[3] = aget(&A_o_filled, o);
            if (got[3] == NULL) rc = -1;
            for (int f = 0; rc == 1 && f < 4; f++) {
                if (!PyLong_CheckExact(got[f])) rc = 0; /* a fractional queue estimate */
                else vals[pi][i][f] = as_i64(got[f]);
            }
            int64_t sum;
            if (rc == 1 && (PyErr_Occurred() || __builtin_add_overflow(vals[pi][i][1], qty, &sum))) {
                PyErr_Clear();
                rc = 0;
            }
            for (int f = 0; f < 4; f++) Py_XDECREF(got[f]);
        }
    }
    int64_t left = qty;
    for (int pi = 0; rc == 1 && pi < np; pi++) {
        int64_t q = prices[pi], consumed = 0;
        int through = q != p;
        for (Py_ssize_t i = 0; rc == 1 && i < PyList_GET_SIZE(snaps[pi]); i++) {
            PyObject *o = PyList_GET_ITEM(snaps[pi], i);
            int64_t a = vals[pi][i][0], t = vals[pi][i][1], rem = vals[pi][i][2] - vals[pi][i][3];
            if (through) {
                if (set_i64(&A_o_ahead, o, 0) < 0) rc = -1; /* the print is past our price */
            } else {
                if (set_i64(&A_o_traded, o, t + qty) < 0) rc = -1;
                if (rc == 1 && a) {
                    int64_t need = a - consumed;
                    if (need > 0) {
                        int64_t take = left < need ? left : need;
                        left -= take;
                        consumed += take;
                    }
                    a -= consumed;
                    if (set_i64(&A_o_ahead, o, a > 0 ? a : 0) < 0) rc = -1;
                }
            }
            if (rc == 1 && left > 0) {
                int64_t f = rem < left ? rem : left;
                left -= f;
                PyObject *fq = PyLong_FromLongLong(f), *pp = fq ? PyLong_FromLongLong(q) : NULL,
                         *tso = pp ? PyLong_FromLongLong(ts) : NULL, *res = NULL;
                if (tso != NULL && clock_sync() == 0) {
                    PyObject *args[8] = {x->sim, st, o, fq, pp, S_maker, tso, S_fill};
                    res = PyObject_VectorcallMethod(M_fill, args, 8 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
                }
                Py_XDECREF(fq);
                Py_XDECREF(pp);
                Py_XDECREF(tso);
                if (res == NULL) rc = -1;
                Py_XDECREF(res);
            }
        }
    }
    for (int pi = 0; pi < np; pi++) Py_XDECREF(snaps[pi]);
    Py_DECREF(mine);
    return rc;
}

/* FillSimulator.on_market for row r with nothing due by its ts (the engine advanced). */
static int sim_on_market(Ctx *x, Py_ssize_t r) {
    PyObject *st = PyTuple_GET_ITEM(x->sims, x->sym[r]);
    if (st == Py_None) return 0;
    int64_t ts = x->ts[r];
    int k = x->kind[r];
    if (k == K_DELTA && !odd_levels(x, r)) {
        int64_t n;
        if (get_i64(&A_st_n, st, &n) < 0) return -1;
        sim_now_set(x, ts);
        PyObject *book = aget(&A_st_book, st);
        if (book == NULL) return -1;
        NativeBook *nbk = native(book);
        int rc = nbk ? 0 : -1;
        if (rc == 0 && n) {
            /* FillSimulator._delta: the queue update where a level of ours changes */
            int64_t first = x->a[r], nb = x->b[r], na = x->c[r];
            PyObject *mb = aget(&A_st_bids, st), *ma = mb ? aget(&A_st_asks, st) : NULL;
            int hb = ma && PyDict_Check(mb) && PyDict_Check(ma) ? hits(mb, x->lpx + first, nb) : -1;
            int ha = hb >= 0 ? hits(ma, x->lpx + first + nb, na) : -1;
            if (ha < 0) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "our orders by price must be dicts");
                rc = -1;
            } else {
                rc = apply_delta_nb(x, nbk, r, hb ? mb : NULL, ha ? ma : NULL);
            }
            Py_XDECREF(mb);
            Py_XDECREF(ma);
            if (rc == 0 && x->cross_fills) {
                int cross = crossing(nbk, st);
                if (cross < 0) rc = -1;
                else if (cross == 2 && x->cross_fills == 2) rc = forget_used(st);
                else if (cross) {
                    PyObject *objs[1] = {st};
                    rc = call_method(x->sim, M_check_cross, objs, 1, &ts, 1);
                }
            }
        } else if (rc == 0) {
            rc = apply_delta_nb(x, nbk, r, NULL, NULL);
        }
        if (rc == 0) nbk->ts = ts;
        if (rc == 0) rc = aset(&A_st_depth_seen, st, Py_True);
        Py_DECREF(book);
        return rc;
    }
    if (k == K_TRADE) {
        int64_t side = x->a[r], price = x->b[r], lim;
        int reach;
        if (side < 0) {
            if (get_i64(&A_st_max_bid, st, &lim) < 0) return -1;
            reach = price <= lim;
        } else {
            if (get_i64(&A_st_min_ask, st, &lim) < 0) return -1;
            reach = price >= lim;
        }
        sim_now_set(x, ts); /* FillSimulator.on_market sets it before _trade */
        if (reach) {
            int done = plain_trade(x, st, side < 0, price, x->c[r], ts);
            if (done <= 0) return done < 0 ? -1 : call_with_row(x, x->sim, M_on_market, r, NULL, 0);
        }
        return 0;
    }
    if (k == K_QUOTE) {
        int seen = get_truth(&A_st_depth_seen, st);
        if (seen < 0) return -1;
        if (!seen) return call_with_row(x, x->sim, M_on_market, r, NULL, 0);
        sim_now_set(x, ts);
        return 0;
    }
    return call_with_row(x, x->sim, M_on_market, r, NULL, 0);
}

/* ------------------------------------------------------------------ signals */

/* TradeIntensity.on_trade */
static int on_trade(Ctx *x, PyObject *signals, int64_t ts, int64_t side, int64_t qty) {
    PyObject *ti = aget(&A_sig_intensity, signals);
    if (ti == NULL) return -1;
    int64_t last, trades;
    double hl, count, buy, sell;
    int rc = get_opt_i64(&A_ti_last_ts, ti, &last);
    int has_last = rc;
    if (rc < 0 || get_f64(&A_ti_half_life, ti, &hl) < 0 || get_f64(&A_ti_count, ti, &count) < 0 ||
        get_f64(&A_ti_buy, ti, &buy) < 0 || get_f64(&A_ti_sell, ti, &sell) < 0 || get_i64(&A_ti_trades, ti, &trades) < 0) {
        Py_DECREF(ti);
        return -1;
    }
    if (has_last && ts > last) {
        double d = exp(-x->ln2 * (double)(ts - last) / hl);
        count *= d;
        buy *= d;
        sell *= d;
    }
    rc = 0;
    if (!has_last || ts > last) rc = set_i64(&A_ti_last_ts, ti, ts);
    count += 1.0;
    if (side == BUY) buy += (double)qty;
    else sell += (double)qty;
    if (rc == 0) rc = set_f64(&A_ti_count, ti, count);
    if (rc == 0) rc = set_f64(&A_ti_buy, ti, buy);
    if (rc == 0) rc = set_f64(&A_ti_sell, ti, sell);
    if (rc == 0) rc = set_i64(&A_ti_trades, ti, trades + 1);
    Py_DECREF(ti);
    return rc;
}

/* Would MarkoutTracker.on_mid(ts, mid2) mature a fill?  Then Python does it. 1/0/-1 */
static int markouts_due(PyObject *mk, int64_t ts, int *first) {
    PyObject *mid2 = aget(&A_m_mid2, mk);
    if (mid2 == NULL) return -1;
    *first = mid2 == Py_None;
    Py_DECREF(mid2);
    int64_t upto = *first ? ts : ts - 1;
    PyObject *pending = aget(&A_m_pending, mk);
    if (pending == NULL) return -1;
    PyObject *seq = PySequence_Fast(pending, "markout queues");
    Py_DECREF(pending);
    if (seq == NULL) return -1;
    int due = 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq) && !due; i++) {
        int64_t h;
        int rc = deque_head(PySequence_Fast_GET_ITEM(seq, i), &h);
        if (rc < 0) due = -1;
        else if (rc && h <= upto) due = 1;
    }
    Py_DECREF(seq);
    return due;
}

/* EwmaVol.on_mid(ts, mid) for a positive finite mid */
static int vol_on_mid(Ctx *x, PyObject *vol, int64_t ts, double mid) {
    int64_t last;
    int rc = get_opt_i64(&A_v_last_ts, vol, &last);
    if (rc < 0) return -1;
    if (rc == 0) {
        if (set_i64(&A_v_last_ts, vol, ts) < 0) return -1;
        return set_f64(&A_v_last_log_mid, vol, log(mid));
    }
    if (ts <= last) {
        int64_t rej;
        if (get_i64(&A_v_rejected, vol, &rej) < 0) return -1;
        return set_i64(&A_v_rejected, vol, rej + 1);
    }
    double last_log, var_sum, weight, hl;
    int64_t samples;
    if (get_f64(&A_v_last_log_mid, vol, &last_log) < 0 || get_f64(&A_v_var_sum, vol, &var_sum) < 0 ||
        get_f64(&A_v_weight, vol, &weight) < 0 || get_f64(&A_v_half_life, vol, &hl) < 0 ||
        get_i64(&A_v_samples, vol, &samples) < 0)
        return -1;
    double lm = log(mid);
    double r = lm - last_log;
    int64_t dt_ns = ts - last;
    double decay = exp(-x->ln2 * (double)dt_ns / hl);
    var_sum = decay * var_sum + (1.0 - decay) * (r * r * 1e9 / (double)dt_ns);
    weight = decay * weight + (1.0 - decay);
    if (set_f64(&A_v_var_sum, vol, var_sum) < 0 || set_f64(&A_v_weight, vol, weight) < 0 ||
        set_i64(&A_v_last_ts, vol, ts) < 0 || set_f64(&A_v_last_log_mid, vol, lm) < 0 ||
        set_i64(&A_v_samples, vol, samples + 1) < 0)
        return -1;
    return 0;
}

ATTR(A_m_count, "_count");
ATTR(A_m_sum, "_sum");
ATTR(A_m_up, "_up");
ATTR(A_m_down, "_down");
static Attr *MARKOUT_ATTRS[] = {&A_m_count, &A_m_sum, &A_m_up, &A_m_down, NULL};
static PyObject *M_mature;

/* lst[i] += d for a list of ints */
static int list_bump(PyObject *lst, Py_ssize_t i, int64_t d) {
    PyObject *v = PyLong_FromLongLong(d);
    PyObject *cur = PyList_GET_ITEM(lst, i);
    PyObject *sum = v == NULL ? NULL : PyNumber_Add(cur, v);
    Py_XDECREF(v);
    if (sum == NULL) return -1;
    PyList_SET_ITEM(lst, i, sum);
    Py_DECREF(cur);
    return 0;
}

/* MarkoutTracker._mature(upto) for the stock tracker: every queued fill due at or before
   upto, per horizon, against the mid in force (_mid2), as exact int bps * 1e4.  A
   markout whose product leaves 64 bits hands the rest to the Python method (what is
   done so far is what it would have done). */
static int mature(Ctx *x, PyObject *mk, int64_t upto) {
    if (!x->stock_markouts) return call_method(mk, M_mature, NULL, 0, &upto, 1);
    int64_t mid2;
    if (get_i64(&A_m_mid2, mk, &mid2) < 0) return -1;
    PyObject *pending = aget(&A_m_pending, mk), *lists[4] = {NULL, NULL, NULL, NULL};
    Attr *la[4] = {&A_m_count, &A_m_sum, &A_m_up, &A_m_down};
    int rc = pending == NULL || !PyTuple_CheckExact(pending) ? -1 : 0;
    if (rc < 0 && pending != NULL) PyErr_SetString(PyExc_TypeError, "markout queues must be a tuple");
    for (int k = 0; rc == 0 && k < 4; k++) {
        lists[k] = aget(la[k], mk);
        if (lists[k] == NULL) rc = -1;
        else if (!PyList_CheckExact(lists[k]) || PyList_GET_SIZE(lists[k]) != PyTuple_GET_SIZE(pending)) {
            PyErr_SetString(PyExc_TypeError, "markout sums must be lists, one entry per horizon");
            rc = -1;
        }
    }
    int handed = 0;
    for (Py_ssize_t i = 0; rc == 0 && !handed && i < PyTuple_GET_SIZE(pending); i++) {
        PyObject *q = PyTuple_GET_ITEM(pending, i);
        for (;;) {
            int64_t due;
            int h = deque_head(q, &due);
            if (h < 0) rc = -1;
            if (h <= 0 || due > upto) break;
            PyObject *item = PySequence_GetItem(q, 0);
            if (item == NULL) {
                rc = -1;
                break;
            }
            int64_t side = PyTuple_GET_SIZE(item) == 3 ? as_i64(PyTuple_GET_ITEM(item, 1)) : 0, px = 0, num, d2, m;
            if (side != 0) px = as_i64(PyTuple_GET_ITEM(item, 2));
            Py_DECREF(item);
            if (PyErr_Occurred()) {
                rc = -1;
                break;
            }
            if (px <= 0 || (side != 1 && side != -1) || __builtin_mul_overflow(px, 2, &d2) ||
                __builtin_sub_overflow(mid2, d2, &num) || __builtin_mul_overflow(num, side * 100000000LL, &num)) {
                handed = 1; /* the Python method, from this fill on */
                break;
            }
            m = num / d2; /* C division truncates toward zero, as markout_bps_e4 does */
            PyObject *r = PyObject_CallMethodNoArgs(q, M_popleft);
            if (r == NULL) {
                rc = -1;
                break;
            }
            Py_DECREF(r);
            if (list_bump(lists[0], i, 1) < 0 || list_bump(lists[1], i, m) < 0 ||
                (m > 0 && list_bump(lists[2], i, 1) < 0) || (m < 0 && list_bump(lists[3], i, 1) < 0)) {
                rc = -1;
                break;
            }
        }
    }
    Py_XDECREF(pending);
    for (int k = 0; k < 4; k++) Py_XDECREF(lists[k]);
    if (rc == 0 && handed) rc = call_method(mk, M_mature, NULL, 0, &upto, 1);
    return rc;
}

/* The int object of v in *obj, made on first use (one object for every attribute that
   takes the same mid). */
static PyObject *shared_int(PyObject **obj, int64_t v) {
    if (*obj == NULL) *obj = PyLong_FromLongLong(v);
    return *obj;
}

/* SymbolSignals.on_touch(ts, bid, ask) for a two-sided touch given as ints; *mid2o is
   bid + ask as an int object once made (the caller releases it). */
static int touch(Ctx *x, PyObject *signals, int64_t ts, int64_t b, int64_t a, PyObject **mid2o) {
    int64_t mid2, last;
    if (b >= a) return 0;
    if (__builtin_add_overflow(b, a, &mid2) || mid2 > ((int64_t)1 << 53)) {
        /* beyond exact doubles: the Python method */
        int64_t ints[3] = {ts, b, a};
        return call_method(signals, M_on_touch, NULL, 0, ints, 3);
    }
    if (mid2 <= 0) return 0;
    if (get_i64(&A_sig_last_mid2, signals, &last) < 0) return -1;
    if (mid2 == last) return 0;
    if (shared_int(mid2o, mid2) == NULL || aset(&A_sig_last_mid2, signals, *mid2o) < 0) return -1;
    PyObject *mk = aget(&A_sig_markouts, signals);
    if (mk == NULL) return -1;
    int first = 0;
    int due = markouts_due(mk, ts, &first);
    int rc = due < 0 ? -1 : 0;
    if (due > 0 && !x->stock_markouts) {
        int64_t ints[2] = {ts, mid2};
        rc = call_method(mk, M_on_mid, NULL, 0, ints, 2);
    } else if (due > 0) { /* MarkoutTracker.on_mid: mature with the mid in force, then the new one */
        if (first) rc = aset(&A_m_mid2, mk, *mid2o) < 0 || mature(x, mk, ts) < 0 ? -1 : 0;
        else rc = mature(x, mk, ts - 1) < 0 || aset(&A_m_mid2, mk, *mid2o) < 0 ? -1 : 0;
    } else if (due == 0) {
        rc = aset(&A_m_mid2, mk, *mid2o);
    }
    Py_DECREF(mk);
    if (rc < 0) return -1;
    PyObject *vol = aget(&A_sig_vol, signals);
    if (vol == NULL) return -1;
    rc = vol_on_mid(x, vol, ts, (double)mid2 * 0.5);
    Py_DECREF(vol);
    return rc;
}

/* ------------------------------------------------------------------ the local side */

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* After a delta on a two-sided local book: SymbolSignals.on_touch, then the engine's
   mark (rt.last_mid2 and Ledger.mark_mid2) when the mid changed. */
static int mark(Ctx *x, PyObject *rt, PyObject *signals, PyObject *lbook, int64_t ts, int64_t now, int64_t bid,
                int64_t ask, PyObject **mid2o) {
    if (touch(x, signals, ts, bid, ask, mid2o) < 0) return -1;
    if (bid >= ask) return 0;
    int64_t mid2, last;
    if (__builtin_add_overflow(bid, ask, &mid2)) {
        PyErr_SetString(PyExc_OverflowError, "bid + ask beyond 64 bits");
        return -1;
    }
    if (get_i64(&A_rt_last_mid2, rt, &last) < 0) return -1;
    if (mid2 == last) return 0;
    if (shared_int(mid2o, mid2) == NULL || aset(&A_rt_last_mid2, rt, *mid2o) < 0) return -1;
    if (mid2 <= 0) { /* Ledger.mark_mid2 raises its own error for it */
        PyObject *sym = PyObject_GetAttrString(rt, "symbol");
        if (sym == NULL) return -1;
        PyObject *objs[2] = {sym, *mid2o};
        int rc = call_method(x->ledger, M_mark_mid2, objs, 2, &now, 1);
        Py_DECREF(sym);
        return rc;
    }
    /* Ledger.mark_mid2(symbol, mid2, now) on the symbol's ledger book */
    if (aset(&A_lb_mark_src, lbook, *mid2o) < 0 || aset(&A_lb_mark_px, lbook, Py_None) < 0 ||
        aset(&A_lb_mark_v, lbook, Py_None) < 0 || set_i64(&A_lb_mark_ts, lbook, now) < 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ decisions */

/* Engine._decide's own steps in C around the two calls that stay in Python (the strategy's
   quotes and, when something is to be done, the order manager's reconcile), for the stock
   parts: the checks, the counters, the signal snapshot (SymbolSignals.snapshot: the same
   float expressions in the same order), the quote context, and OrderManager._nothing_to_do
   (the fast path of reconcile: nothing to send, nothing to change).  Whenever a value
   falls outside what the C reading covers (ints beyond 64 bits or beyond exact doubles, a
   rebalance due, an unusual type), the Python method does the step or the whole
   decision, so the result is the Python one by construction. */

ATTR(A_rt_strategy, "strategy");
ATTR(A_rt_orders, "orders");
ATTR(A_rt_instrument, "instrument");
ATTR(A_rt_symbol, "symbol");
ATTR(A_rt_budget, "budget");
ATTR(A_rt_target, "target_usd_per_side");
ATTR(A_rt_max_levels, "max_levels");
ATTR(A_rt_decisions, "decisions");
ATTR(A_e_allocator, "allocator");
ATTR(A_e_positions, "positions");
ATTR(A_e_lot_usd, "_lot_usd");
ATTR(A_e_maker, "maker_fee_bps");
ATTR(A_e_taker, "taker_fee_bps");
ATTR(A_c_decisions, "decisions");
ATTR(A_al_force, "_force");
ATTR(A_al_last, "_last_ns");
ATTR(A_al_portfolio, "portfolio");
ATTR(A_pf_rebalance, "rebalance_minutes");
ATTR(A_sig_levels, "imbalance_levels");
ATTR(A_sig_bias, "imbalance_bias_bps");
ATTR(A_sig_weight, "microprice_weight_ratio");
ATTR(A_sig_impact, "impact_cap_ratio");
ATTR(A_ti_k, "_k");
ATTR(A_lb_qty, "qty");
ATTR(A_om_budget, "_budget");
ATTR(A_om_detached, "_n_detached");
ATTR(A_om_att, "_att");
ATTR(A_om_max_levels, "_max_levels");
ATTR(A_om_tail_thr, "_tail_thr_ns");
ATTR(A_om_guard, "_guard");
ATTR(A_om_ttl, "_ttl_ns");
ATTR(A_om_min_tib, "_min_tib_ns");
ATTR(A_om_amend, "_amend");
ATTR(A_om_drift, "_drift_bps");
ATTR(A_om_thr, "_thr_bps");
ATTR(A_om_cap, "_cap");
ATTR(A_om_tot, "_tot");
ATTR(A_om_symbol, "symbol");
ATTR(A_lo_price, "price");
ATTR(A_lo_level, "level");
ATTR(A_lo_side, "side");
ATTR(A_lo_state, "state");
ATTR(A_lo_priced, "priced_ns");
ATTR(A_lo_qty, "qty");
ATTR(A_lo_filled, "filled");
ATTR(A_lo_ref_mid, "ref_mid");
ATTR(A_q_price, "price");
ATTR(A_q_side, "side");
ATTR(A_q_level, "level");
ATTR(A_q_qty, "qty");
ATTR(A_q_symbol, "symbol");

static Attr *DECIDE_ATTRS[] = {
    &A_rt_strategy, &A_rt_orders, &A_rt_instrument, &A_rt_symbol, &A_rt_budget, &A_rt_target, &A_rt_max_levels,
    &A_rt_decisions, &A_e_allocator, &A_e_positions, &A_e_lot_usd, &A_e_maker, &A_e_taker, &A_c_decisions,
    &A_al_force, &A_al_last,
    &A_al_portfolio, &A_pf_rebalance, &A_sig_levels, &A_sig_bias, &A_sig_weight, &A_sig_impact, &A_ti_k, &A_lb_qty,
    &A_om_budget, &A_om_detached, &A_om_att, &A_om_max_levels, &A_om_tail_thr, &A_om_guard, &A_om_ttl, &A_om_min_tib,
    &A_om_amend, &A_om_drift, &A_om_thr, &A_om_cap, &A_om_tot, &A_om_symbol, &A_lo_price, &A_lo_level, &A_lo_side,
    &A_lo_state, &A_lo_priced, &A_lo_qty, &A_lo_filled, &A_lo_ref_mid, &A_q_price, &A_q_side, &A_q_level, &A_q_qty,
    &A_q_symbol, NULL};

static PyObject *M_quotes, *M_reconcile, *M_reconcile_slow, *M_send, *M_advance, *M_mark_positions, *M_snapshot,
    *M_update_mark;

#define EXACT_DBL ((int64_t)1 << 53)
#define FOREVER ((int64_t)1 << 62)

/* Reads for the mirrored steps: 1 = read, 0 = not an int64 (the caller falls back to
   Python, which handles it), -1 = another error. */
static int rd_i64(Attr *a, PyObject *obj, int64_t *out) {
    PyObject *v = aget(a, obj);
    if (v == NULL) return -1;
    int ok = PyLong_Check(v);
    if (ok) {
        *out = as_i64(v);
        if (*out == -1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) ok = -1;
            else {
                PyErr_Clear();
                ok = 0;
            }
        }
    }
    Py_DECREF(v);
    return ok;
}

/* A float attribute, or an int one as Python converts it when it meets a float in an
   expression (correctly rounded); 0 for anything else. */
static int rd_f64(Attr *a, PyObject *obj, double *out) {
    PyObject *v = aget(a, obj);
    if (v == NULL) return -1;
    int ok = 0;
    if (PyFloat_CheckExact(v)) {
        *out = PyFloat_AS_DOUBLE(v);
        ok = 1;
    } else if (PyLong_CheckExact(v)) {
        *out = PyLong_AsDouble(v);
        ok = 1;
        if (*out == -1.0 && PyErr_Occurred()) {
            ok = PyErr_ExceptionMatches(PyExc_OverflowError) ? 0 : -1;
            if (ok == 0) PyErr_Clear();
        }
    }
    Py_DECREF(v);
    return ok;
}

/* a == b for the state strings (interned constants, or equal strings after a restore) */
static int same_str(PyObject *a, PyObject *b) {
    if (a == b) return 1;
    return PyUnicode_Check(a) && PyUnicode_Check(b) && PyUnicode_Compare(a, b) == 0;
}

/* |a - b| * 10000 as an exact int compared with the double r: 1 if >=, 0 if <, 2 unsure */
static int int_ge_dbl(int64_t diff, double r) {
    if (diff < 0) diff = -diff;
    if (diff > EXACT_DBL / 10000) return 2;
    return (double)(diff * 10000) >= r;
}

/* OrderManager._nothing_to_do(desired, now, mid, maxlv) for a manager whose budget did not
   change and has no detached order.  1 = nothing to do, 0 = something to do (the Python
   method answers False: _reconcile_slow runs next), 2 = not known (a value the C reading
   does not cover: OrderManager.reconcile decides), -1 = error. */
/* One desired quote as the reconcile fast path reads it (symbol: a new reference). */
typedef struct {
    int64_t side, level, price, qty;
    PyObject *symbol;
} Want;

#define MAX_WANTS 32

static void wants_clear(Want *w, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) Py_CLEAR(w[i].symbol);
}

/* A strategy's list of DesiredQuote objects read into `w`: 1, or 0 when the C reading
   does not cover it (not a list or tuple, too many quotes, a value beyond 64 bits),
   -1 on error.  *n counts the entries holding a reference either way. */
static int wants_read(PyObject *desired, Want *w, Py_ssize_t *n) {
    *n = 0;
    if (!PyList_CheckExact(desired) && !PyTuple_CheckExact(desired)) return 0;
    Py_ssize_t nq = PySequence_Fast_GET_SIZE(desired);
    if (nq > MAX_WANTS) return 0;
    for (Py_ssize_t i = 0; i < nq; i++) {
        PyObject *q = PySequence_Fast_GET_ITEM(desired, i);
        int r;
        if ((r = rd_i64(&A_q_price, q, &w[i].price)) != 1 || (r = rd_i64(&A_q_side, q, &w[i].side)) != 1 ||
            (r = rd_i64(&A_q_level, q, &w[i].level)) != 1 || (r = rd_i64(&A_q_qty, q, &w[i].qty)) != 1)
            return r;
        w[i].symbol = aget(&A_q_symbol, q);
        if (w[i].symbol == NULL) return -1;
        (*n)++;
    }
    return 1;
}

/* The anti-stale guard's drift test of an order whose price was chosen at ref_mid:
   |mid - ref_mid| * 10000.0 >= drift_bps * ref_mid, in Python's float order.  1 drifted,
   0 not (or ref_mid <= 0), 2 not known exactly (the Python method decides), -1 error. */
static int drifted(PyObject *o, int64_t mid, double drift) {
    PyObject *ref = aget(&A_lo_ref_mid, o);
    if (ref == NULL) return -1;
    double refd = 0.0, dist = 0.0;
    int known = 1;
    if (PyFloat_CheckExact(ref)) {
        refd = PyFloat_AS_DOUBLE(ref);
        dist = (double)mid - refd; /* int - float: the int as a double */
        if (mid > EXACT_DBL) known = 0;
    } else if (PyLong_CheckExact(ref)) {
        int64_t ri = as_i64(ref);
        if (ri == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            known = 0;
        }
        refd = (double)ri;
        dist = (double)(mid - ri); /* int - int, exact, then a double */
        if (ri > EXACT_DBL || ri < -EXACT_DBL || mid > EXACT_DBL) known = 0;
    } else {
        known = 0;
    }
    Py_DECREF(ref);
    if (!known) return 2;
    return refd > 0 && fabs(dist) * 10000.0 >= drift * refd;
}

static int nothing_to_do(Ctx *x, PyObject *om, const Want *w, Py_ssize_t nq, int64_t now, int64_t mid) {
    PyObject *att = NULL, *sym = NULL;
    int64_t maxlv, tail_thr, ttl, min_tib;
    int rc = 0, guard, size_down;
    att = aget(&A_om_att, om);
    sym = att ? aget(&A_om_symbol, om) : NULL;
    if (sym == NULL) goto error;
    if (!PyTuple_CheckExact(att) || PyTuple_GET_SIZE(att) != 2 || !PyList_CheckExact(PyTuple_GET_ITEM(att, 0)) ||
        !PyList_CheckExact(PyTuple_GET_ITEM(att, 1)))
        goto unsure;
    int r;
    if ((r = rd_i64(&A_om_max_levels, om, &maxlv)) != 1 || (r = rd_i64(&A_om_tail_thr, om, &tail_thr)) != 1 ||
        (r = rd_i64(&A_om_min_tib, om, &min_tib)) != 1)
        goto read_fail;
    guard = get_truth(&A_om_guard, om);
    size_down = guard < 0 ? -1 : get_truth(&A_om_amend, om);
    if (size_down < 0) goto error;
    if (guard) {
        if ((r = rd_i64(&A_om_ttl, om, &ttl)) != 1) goto read_fail;
    } else {
        ttl = FOREVER;
    }
    double drift = 0.0, thr;
    if (guard && (r = rd_f64(&A_om_drift, om, &drift)) != 1) goto read_fail;
    if ((r = rd_f64(&A_om_thr, om, &thr)) != 1) goto read_fail;
    PyObject *att_side[2] = {PyTuple_GET_ITEM(att, 0), PyTuple_GET_ITEM(att, 1)};
    Py_ssize_t used[2] = {0, 0};
    int64_t prev_o[2] = {FOREVER, 0}, prev_q[2] = {FOREVER, 0};
    for (Py_ssize_t i = 0; i < nq; i++) {
        const Want *q = &w[i];
        int64_t qp = q->price, qside = q->side, qlevel = q->level, qqty = q->qty, op, olevel, oside, priced, oqty,
                filled;
        int s = qside == BUY ? 0 : 1;
        PyObject *list = att_side[s];
        if (used[s] >= PyList_GET_SIZE(list)) goto done;
        PyObject *o = PyList_GET_ITEM(list, used[s]);
        used[s]++;
        if ((r = rd_i64(&A_lo_price, o, &op)) != 1) goto read_fail;
        if (s == 0 ? (op >= prev_o[0] || qp >= prev_q[0]) : (op <= prev_o[1] || qp <= prev_q[1])) goto done;
        prev_o[s] = op;
        prev_q[s] = qp;
        if ((r = rd_i64(&A_lo_level, o, &olevel)) != 1 || (r = rd_i64(&A_lo_side, o, &oside)) != 1) goto read_fail;
        if (olevel != qlevel || oside != qside || qlevel >= maxlv || qqty <= 0 || qp <= 0) goto done;
        PyObject *st = aget(&A_lo_state, o);
        if (st == NULL) goto error;
        int resting = same_str(st, x->st_open) || same_str(st, x->st_partial);
        Py_DECREF(st);
        if (!resting || !same_str(q->symbol, sym)) goto done;
        if ((r = rd_i64(&A_lo_priced, o, &priced)) != 1) goto read_fail;
        int64_t age;
        if (__builtin_sub_overflow(now, priced, &age)) goto unsure;
        if (age >= tail_thr) goto done;
        if (op == qp) {
            if ((r = rd_i64(&A_lo_qty, o, &oqty)) != 1 || (r = rd_i64(&A_lo_filled, o, &filled)) != 1) goto read_fail;
            int64_t rem = oqty - filled;
            if (qqty != rem && ((size_down && qqty < rem) || age >= ttl)) goto done;
            continue;
        }
        if (age >= min_tib) {
            if (age >= ttl) goto done;
            if (guard && mid > 0) {
                int d = drifted(o, mid, drift);
                if (d < 0) goto error;
                if (d == 2) goto unsure;
                if (d) goto done;
            }
            if (op > EXACT_DBL || op < -EXACT_DBL || qp > EXACT_DBL) goto unsure;
            int ge = int_ge_dbl(qp - op, thr * (double)op);
            if (ge == 2) goto unsure;
            if (ge != 0) goto done; /* >= : a replace */
        }
        /* the order rests at another price but is held: it must rest at no other desired
           price of its side (the full pass would re-match it) */
        for (Py_ssize_t j = 0; j < nq; j++)
            if ((w[j].side == BUY) == (s == 0) && w[j].price == op) goto done;
    }
    if (used[0] != PyList_GET_SIZE(att_side[0]) || used[1] != PyList_GET_SIZE(att_side[1])) goto done;
    {
        PyObject *cap = aget(&A_om_cap, om);
        if (cap == NULL) goto error;
        if (cap == Py_None) {
            rc = 1;
        } else {
            PyObject *tot = aget(&A_om_tot, om);
            if (tot == NULL) {
                Py_DECREF(cap);
                goto error;
            }
            if (PyList_CheckExact(tot) && PyList_GET_SIZE(tot) == 2) {
                int a = PyObject_RichCompareBool(PyList_GET_ITEM(tot, 0), cap, Py_LE);
                int b = a == 1 ? PyObject_RichCompareBool(PyList_GET_ITEM(tot, 1), cap, Py_LE) : a;
                if (b < 0) rc = -1;
                else rc = a == 1 && b == 1;
            } else {
                rc = 2;
            }
            Py_DECREF(tot);
        }
        Py_DECREF(cap);
    }
    goto done;
read_fail:
    if (r < 0) goto error;
unsure:
    rc = 2;
    goto done;
error:
    rc = -1;
done:
    Py_XDECREF(att);
    Py_XDECREF(sym);
    return rc;
}

/* int / int as Python's true division for operands within exact doubles: 1 and *out,
   0 when outside (the caller falls back). */
static int true_div(int64_t num, int64_t den, double *out) {
    if (num > EXACT_DBL || num < -EXACT_DBL || den > EXACT_DBL || den < -EXACT_DBL || den == 0) return 0;
    *out = (double)num / (double)den;
    return 1;
}

/* SymbolSignals.snapshot(now, book) after markouts.advance(now) ran (two-sided book, bid
   < ask, both sizes > 0): a new SignalSnapshot, or NULL with *fallback = 1 when a value
   is outside the C reading (the caller then calls the Python method). */
static PyObject *snapshot(Ctx *x, PyObject *signals, NativeBook *b, int64_t now, int64_t bid, int64_t ask,
                          int64_t bq, int64_t aq, int *fallback) {
    PyObject *vol = NULL, *ti = NULL, *samples = NULL, *result = NULL;
    vol = aget(&A_sig_vol, signals);
    ti = vol ? aget(&A_sig_intensity, signals) : NULL;
    if (ti == NULL) goto out;
    /* TradeIntensity.rates(now) */
    double tr = 0.0, bl = 0.0, sl = 0.0;
    int64_t last;
    int has_last = get_opt_i64(&A_ti_last_ts, ti, &last);
    if (has_last < 0) goto out;
    if (has_last) {
        double hl, k, count, buy, sell;
        int r;
        if ((r = rd_f64(&A_ti_half_life, ti, &hl)) != 1 || (r = rd_f64(&A_ti_k, ti, &k)) != 1 ||
            (r = rd_f64(&A_ti_count, ti, &count)) != 1 || (r = rd_f64(&A_ti_buy, ti, &buy)) != 1 ||
            (r = rd_f64(&A_ti_sell, ti, &sell)) != 1)
            goto out;
        double d = now > last ? exp(-x->ln2 * (double)(now - last) / hl) : 1.0;
        double kd = k * d;
        tr = count * kd;
        bl = buy * kd;
        sl = sell * kd;
    }
    /* EwmaVol.vol_per_sqrt_s */
    double var_sum, weight;
    if (rd_f64(&A_v_var_sum, vol, &var_sum) != 1 || rd_f64(&A_v_weight, vol, &weight) != 1) goto out;
    double volv = sqrt(weight > 0 ? var_sum / weight : 0.0);
    samples = aget(&A_v_samples, vol);
    if (samples == NULL) goto out;
    /* microprice tilt and imbalance */
    int64_t mid2, num1, num2, num, tot;
    if (__builtin_add_overflow(bid, ask, &mid2) || __builtin_mul_overflow(bid, aq, &num1) ||
        __builtin_mul_overflow(ask, bq, &num2) || __builtin_add_overflow(num1, num2, &num) ||
        __builtin_add_overflow(bq, aq, &tot))
        goto out;
    double mid = (double)mid2 * 0.5, micro;
    if (tot <= 0) micro = (double)mid2 / 2.0;
    else if (!true_div(num, tot, &micro)) goto out;
    if (mid2 > EXACT_DBL) goto out;
    double tilt = micro - mid;
    int64_t n;
    if (rd_i64(&A_sig_levels, signals, &n) != 1) goto out;
    double imb;
    if (n > 1) {
        int64_t lb, la, t2, d2;
        if (!nb_top_lots(&b->side[NB_BIDS], 1, n, &lb) || !nb_top_lots(&b->side[NB_ASKS], 0, n, &la) ||
            __builtin_add_overflow(lb, la, &t2) || __builtin_sub_overflow(lb, la, &d2))
            goto out;
        if (t2 <= 0) imb = 0.0;
        else if (!true_div(d2, t2, &imb)) goto out;
    } else {
        if (tot <= 0) imb = 0.0;
        else if (!true_div(bq - aq, tot, &imb)) goto out;
    }
    double bias, weight_r;
    if (rd_f64(&A_sig_bias, signals, &bias) != 1 || rd_f64(&A_sig_weight, signals, &weight_r) != 1) goto out;
    double raw = imb * bias * mid / 10000.0 + weight_r * tilt;
    PyObject *impact = aget(&A_sig_impact, signals);
    if (impact == NULL) goto out;
    PyObject *args[11];
    args[0] = PyLong_FromLongLong(now);
    args[1] = PyFloat_FromDouble(mid);
    args[2] = PyFloat_FromDouble(volv);
    args[3] = samples;
    args[4] = PyFloat_FromDouble(tr);
    args[5] = PyFloat_FromDouble(bl);
    args[6] = PyFloat_FromDouble(sl);
    args[7] = PyFloat_FromDouble(imb);
    args[8] = PyFloat_FromDouble(tilt);
    args[9] = PyFloat_FromDouble(raw);
    args[10] = impact;
    int made = 1;
    for (int i = 0; i < 10; i++)
        if (args[i] == NULL) made = 0;
    if (made) result = PyObject_Vectorcall(x->make_snapshot, args, 11, NULL);
    for (int i = 0; i < 10; i++)
        if (i != 3) Py_XDECREF(args[i]);
    Py_DECREF(impact);
out:
    *fallback = result == NULL && !PyErr_Occurred();
    Py_XDECREF(vol);
    Py_XDECREF(ti);
    Py_XDECREF(samples);
    return result;
}

/* Allocator.due(now) for the stock allocator: 1/0, -1 on error, 2 = ask Python. */
static int allocator_due(PyObject *alloc, int64_t now) {
    int force = get_truth(&A_al_force, alloc);
    if (force != 0) return force < 0 ? -1 : 1;
    int64_t last;
    int r = get_opt_i64(&A_al_last, alloc, &last);
    if (r <= 0) return r < 0 ? -1 : 1;
    PyObject *pf = aget(&A_al_portfolio, alloc);
    if (pf == NULL) return -1;
    double minutes;
    r = rd_f64(&A_pf_rebalance, pf, &minutes);
    Py_DECREF(pf);
    if (r != 1) return r < 0 ? -1 : 2;
    double p = nearbyint(minutes * 60.0 * 1e9); /* int(round(...)): half to even */
    if (!(p < 9.2e18 && p > -9.2e18)) return 2;
    int64_t diff;
    if (__builtin_sub_overflow(now, last, &diff)) return 2;
    return diff >= (int64_t)p;
}

static int bump(PyObject *counters, Attr *a, Py_ssize_t v);

/* Engine._decide(rt, now) (the engine is not paused). */
/* FixedStrategy.quotes and .prices for the stock strategy (engine._fixed_terms gives its
   integers): up to one bid and one ask in `w`.  1 when computed, 0 when Python must do it
   (a product beyond 64 bits, or quotes that break _check_pair: Python raises), -1 on
   error.  The context it would read: pulls off (the engine's context has none), the
   position from the ledger, max_levels from the runtime. */
static int fixed_quotes(PyObject *terms, PyObject *rt, PyObject *lbook, int64_t bid, int64_t ask, Want *w,
                        Py_ssize_t *nw) {
    *nw = 0;
    if (!PyTuple_CheckExact(terms) || PyTuple_GET_SIZE(terms) != 10) return 0;
    int64_t t[10];
    for (int i = 0; i < 10; i++) {
        t[i] = as_i64(PyTuple_GET_ITEM(terms, i));
        if (t[i] == -1 && PyErr_Occurred()) return -1;
    }
    int64_t hn = t[0], hd = t[1], sn = t[2], sd = t[3], ol = t[4], max_num = t[5], max_den = t[6], inverse = t[7],
            min_lots = t[8], min_units = t[9], pos, maxlv;
    int r;
    if ((r = rd_i64(&A_lb_qty, lbook, &pos)) != 1 || (r = rd_i64(&A_rt_max_levels, rt, &maxlv)) != 1) return r;
    if (!(0 < bid && bid < ask) || maxlv <= 0) return 1; /* [] */
    int64_t sd_ol, sum, base1, base2, base, dh, den, hd2, qb, qa;
    if (__builtin_mul_overflow(sd, ol, &sd_ol) || __builtin_add_overflow(bid, ask, &sum) ||
        __builtin_mul_overflow(sum, sd_ol, &base1) || __builtin_mul_overflow(base1, hd, &base1) ||
        __builtin_mul_overflow(2, sn, &base2) || __builtin_mul_overflow(base2, pos, &base2) ||
        __builtin_mul_overflow(base2, hd, &base2) || __builtin_sub_overflow(base1, base2, &base) ||
        __builtin_mul_overflow(2, hn, &dh) || __builtin_mul_overflow(dh, sd_ol, &dh) ||
        __builtin_mul_overflow(2, sd_ol, &den) || __builtin_mul_overflow(den, hd, &den) || den <= 0 ||
        __builtin_sub_overflow(base, dh, &hd2))
        return 0;
    qb = floor_div(hd2, den);
    int64_t nb;
    if (__builtin_sub_overflow(-base, dh, &nb) || base == INT64_MIN) return 0;
    qa = -floor_div(nb, den); /* ceil */
    if (qb > ask - 1) qb = ask - 1;
    if (qa < bid + 1) qa = bid + 1;
    if (qb >= ask || qa <= bid || qb >= qa || ol <= 0) return 0; /* _check_pair raises, in Python */
    int64_t pd, npd, units;
    if (__builtin_mul_overflow(pos, max_den, &pd) || __builtin_mul_overflow(-pos, max_den, &npd) || pos == INT64_MIN)
        return 0;
    for (int side = 0; side < 2; side++) {
        int64_t px = side == 0 ? qb : qa;
        int allowed = side == 0 ? pd < max_num && px > 0 : npd < max_num;
        if (!allowed) continue;
        int meets;
        if (inverse) meets = ol >= min_lots;
        else if (ol < 1) meets = 0;
        else if (__builtin_mul_overflow(px, ol, &units)) return 0;
        else meets = units >= min_units;
        if (!meets) continue;
        Want *q = &w[*nw];
        q->side = side == 0 ? BUY : -BUY;
        q->level = 0;
        q->price = px;
        q->qty = ol;
        q->symbol = aget(&A_rt_symbol, rt);
        if (q->symbol == NULL) return -1;
        (*nw)++;
    }
    return 1;
}

/* The Want entries as a list of DesiredQuote objects (the strategy's return value), for
   the Python reconcile. */
static PyObject *wants_list(Ctx *x, const Want *w, Py_ssize_t n) {
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *a[5] = {w[i].symbol, PyLong_FromLongLong(w[i].side), PyLong_FromLongLong(w[i].level),
                          PyLong_FromLongLong(w[i].price), PyLong_FromLongLong(w[i].qty)};
        PyObject *q = NULL;
        if (a[1] && a[2] && a[3] && a[4]) q = PyObject_Vectorcall(x->make_desired, a, 5, NULL);
        for (int k = 1; k < 5; k++) Py_XDECREF(a[k]);
        if (q == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, q);
    }
    return out;
}

/* The signal snapshot, the quote context and the strategy's quotes (a new reference to
   its return value), as Engine._decide makes them. */
static PyObject *strategy_quotes(Ctx *x, PyObject *rt, PyObject *signals, PyObject *lbook, NativeBook *b,
                                 int64_t now, int64_t bid, int64_t ask) {
    int64_t bq = nb_get(&b->side[NB_BIDS], bid), aq = nb_get(&b->side[NB_ASKS], ask);
    int fallback;
    PyObject *snap = snapshot(x, signals, b, now, bid, ask, bq, aq, &fallback);
    if (snap == NULL && fallback) { /* SymbolSignals.snapshot: its advance finds nothing left */
        PyObject *nowo = PyLong_FromLongLong(now);
        if (nowo == NULL) return NULL;
        PyObject *args[3] = {signals, nowo, (PyObject *)b};
        snap = clock_sync() < 0 ? NULL
                                : PyObject_VectorcallMethod(M_snapshot, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(nowo);
    }
    if (snap == NULL) return NULL;
    PyObject *ctx = NULL, *desired = NULL;
    PyObject *cargs[13] = {NULL};
    cargs[0] = aget(&A_rt_symbol, rt);
    cargs[1] = aget(&A_rt_instrument, rt);
    cargs[2] = PyLong_FromLongLong(bid);
    cargs[3] = PyLong_FromLongLong(ask);
    cargs[4] = PyLong_FromLongLong(bq);
    cargs[5] = PyLong_FromLongLong(aq);
    cargs[6] = snap;
    cargs[7] = aget(&A_lb_qty, lbook);
    cargs[8] = PyLong_FromLongLong(now);
    cargs[9] = aget(&A_rt_target, rt);
    cargs[10] = aget(&A_rt_max_levels, rt);
    cargs[11] = aget(&A_e_maker, x->engine);
    cargs[12] = aget(&A_e_taker, x->engine);
    int made = 1;
    for (int i = 0; i < 13; i++)
        if (cargs[i] == NULL) made = 0;
    if (made) ctx = PyObject_Vectorcall(x->make_context, cargs, 13, NULL);
    for (int i = 0; i < 13; i++) Py_XDECREF(cargs[i]);
    if (ctx == NULL) return NULL;
    PyObject *strategy = aget(&A_rt_strategy, rt);
    if (strategy != NULL) {
        PyObject *args[2] = {strategy, ctx};
        desired = clock_sync() < 0 ? NULL
                                   : PyObject_VectorcallMethod(M_quotes, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(strategy);
    }
    Py_DECREF(ctx);
    return desired;
}

static int reconcile_c(Ctx *x, PyObject *om, const Want *w, Py_ssize_t nw, int64_t now, int64_t mid,
                       PyObject **actions);
static int send_actions(Ctx *x, PyObject *rt, PyObject *actions, int64_t now);

/* float(Instrument.notional_usd(ticks, 1)) for a linear instrument whose one-lot-per-tick
   value is coef * 10**ex: the exact product (Python's Decimal product is exact under 28
   digits), then the correctly rounded double of its decimal text, as float(Decimal) does.
   1 = done, 0 = not covered (the Python method). */
static int lot_value(int64_t ticks, int64_t coef, int64_t ex, double *out) {
    if (ticks <= 0 || coef <= 0 || ex < -400 || ex > 400) return 0;
    unsigned __int128 p = (unsigned __int128)ticks * (unsigned __int128)coef, lim = 1;
    for (int i = 0; i < 28; i++) lim *= 10;
    if (p >= lim) return 0;
    char digits[40], buf[64];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(p % 10));
        p /= 10;
    } while (p);
    for (int i = 0; i < n; i++) buf[i] = digits[n - 1 - i];
    snprintf(buf + n, sizeof buf - (size_t)n, "e%lld", (long long)ex);
    char *end = NULL;
    *out = strtod(buf, &end);
    return end != NULL && *end == '\0';
}

static int decide(Ctx *x, PyObject *entry, int64_t now) {
    PyObject *rt = PyTuple_GET_ITEM(entry, 0), *signals = PyTuple_GET_ITEM(entry, 2),
             *lbook = PyTuple_GET_ITEM(entry, 3);
    NativeBook *b = (NativeBook *)PyTuple_GET_ITEM(entry, 1);
    int stock_orders = PyObject_IsTrue(PyTuple_GET_ITEM(entry, 4));
    int64_t bid, ask;
    PyObject *objs[4];
    if (!x->stock_decide || b->stale || !nb_best(&b->side[NB_BIDS], &bid) || !nb_best(&b->side[NB_ASKS], &ask) ||
        bid >= ask) {
        objs[0] = rt;
        return call_method(x->engine, M_decide, objs, 1, &now, 1);
    }
    PyObject *alloc = aget(&A_e_allocator, x->engine);
    if (alloc == NULL) return -1;
    int due = 0;
    if (alloc != Py_None) due = x->stock_alloc ? allocator_due(alloc, now) : 2;
    Py_DECREF(alloc);
    if (due != 0) { /* a rebalance (or the question) is for Python: the whole decision there */
        if (due < 0) return -1;
        objs[0] = rt;
        return call_method(x->engine, M_decide, objs, 1, &now, 1);
    }
    PyObject *counters = aget(&A_counters, x->engine);
    if (counters == NULL || bump(counters, &A_c_decisions, 1) < 0) {
        Py_XDECREF(counters);
        return -1;
    }
    Py_DECREF(counters);
    int64_t n_dec;
    if (get_i64(&A_rt_decisions, rt, &n_dec) < 0 || set_i64(&A_rt_decisions, rt, n_dec + 1) < 0) return -1;
    int64_t mid_floor = floor_div(bid + ask, 2);
    PyObject *positions = aget(&A_e_positions, x->engine);
    if (positions == NULL) return -1;
    int rc = 0;
    if (positions != Py_None) { /* Engine._mark_positions, when the mid moved since its last mark */
        int moved = 1;
        PyObject *marks = aget(&A_e_lot_usd, x->engine), *sym = marks ? aget(&A_rt_symbol, rt) : NULL;
        PyObject *last = sym && PyDict_CheckExact(marks) ? PyDict_GetItemWithError(marks, sym) : NULL;
        if (sym == NULL || (last == NULL && PyErr_Occurred())) {
            rc = -1;
        } else if (last != NULL && PyTuple_CheckExact(last) && PyTuple_GET_SIZE(last) == 2 &&
                   PyLong_CheckExact(PyTuple_GET_ITEM(last, 0))) {
            int64_t m = as_i64(PyTuple_GET_ITEM(last, 0));
            if (m == -1 && PyErr_Occurred()) PyErr_Clear();
            else moved = m != mid_floor;
        }
        int done = 0;
        if (rc == 0 && moved && PyTuple_GET_ITEM(entry, 6) != Py_None) { /* the lot value here */
            PyObject *unit = PyTuple_GET_ITEM(entry, 6);
            int64_t coef = as_i64(PyTuple_GET_ITEM(unit, 0)), ex = as_i64(PyTuple_GET_ITEM(unit, 1));
            double v;
            if (PyErr_Occurred()) rc = -1;
            else if (lot_value(mid_floor, coef, ex, &v) && v > 0 && isfinite(v)) {
                PyObject *mo = PyLong_FromLongLong(mid_floor), *vo = mo ? PyFloat_FromDouble(v) : NULL;
                PyObject *pair = vo ? PyTuple_Pack(2, mo, vo) : NULL;
                rc = pair == NULL || PyDict_SetItem(marks, sym, pair) < 0 ? -1 : 0;
                if (rc == 0) {
                    PyObject *o3[2] = {sym, vo};
                    rc = call_method(positions, M_update_mark, o3, 2, &now, 1);
                }
                Py_XDECREF(mo);
                Py_XDECREF(vo);
                Py_XDECREF(pair);
                done = 1;
            }
        }
        Py_XDECREF(marks);
        Py_XDECREF(sym);
        if (rc == 0 && moved && !done) {
            int64_t ints[2] = {mid_floor, now};
            objs[0] = rt;
            rc = call_method(x->engine, M_mark_positions, objs, 1, ints, 2);
        }
    }
    Py_DECREF(positions);
    if (rc < 0) return -1;
    /* SymbolSignals.snapshot: markouts first (Python when one matures), then the rest */
    PyObject *mk = aget(&A_sig_markouts, signals);
    if (mk == NULL) return -1;
    PyObject *mid2now = aget(&A_m_mid2, mk);
    rc = mid2now ? 0 : -1;
    if (rc == 0 && mid2now != Py_None) {
        int first = 0, dueb = markouts_due(mk, now + 1, &first); /* due at or before now */
        if (dueb < 0) rc = -1;
        else if (dueb) rc = x->stock_markouts ? mature(x, mk, now) : call_method(mk, M_advance, NULL, 0, &now, 1);
    }
    Py_XDECREF(mid2now);
    Py_DECREF(mk);
    if (rc < 0) return -1;
    /* the stock fixed strategy in C: it reads neither the signals nor the context, so
       neither is built (the snapshot has no side effect past the markouts above) */
    Want w[MAX_WANTS];
    Py_ssize_t nw = 0;
    int native_q = 0;
    PyObject *terms = PyTuple_GET_ITEM(entry, 5);
    if (terms != Py_None) {
        native_q = fixed_quotes(terms, rt, lbook, bid, ask, w, &nw);
        if (native_q < 0) {
            wants_clear(w, nw);
            return -1;
        }
        if (native_q == 0) wants_clear(w, nw), nw = 0;
    }
    PyObject *result = NULL, *desired = NULL, *orders = NULL, *budget = NULL;
    int slow = 0;
    Want dw[MAX_WANTS];
    Py_ssize_t nd = 0;
    if (!native_q) {
        desired = strategy_quotes(x, rt, signals, lbook, b, now, bid, ask);
        if (desired == NULL) return -1;
    }
    orders = aget(&A_rt_orders, rt);
    budget = orders ? aget(&A_rt_budget, rt) : NULL;
    if (budget == NULL) goto out;
    if (stock_orders == 1) {
        PyObject *cur = aget(&A_om_budget, orders);
        if (cur == NULL) goto out;
        int same = cur == budget;
        Py_DECREF(cur);
        int64_t detached;
        int r = same ? rd_i64(&A_om_detached, orders, &detached) : 0;
        if (r < 0) goto out;
        if (r == 1 && detached != 0) { /* reconcile goes straight to _reconcile_slow */
            int got = 1;
            if (!native_q) {
                got = wants_read(desired, dw, &nd);
                if (got < 0) goto out;
            }
            slow = got == 1;
        }
        if (r == 1 && detached == 0) {
            int ntd = 0;
            if (native_q) {
                ntd = nothing_to_do(x, orders, w, nw, now, mid_floor);
            } else {
                ntd = wants_read(desired, dw, &nd);
                if (ntd == 1) ntd = nothing_to_do(x, orders, dw, nd, now, mid_floor);
                else if (ntd == 0) ntd = 2; /* quotes the C reading does not cover */
            }
            if (ntd < 0) goto out;
            if (ntd == 1) {
                Py_INCREF(Py_None);
                result = Py_None;
                goto out;
            }
            slow = ntd == 0; /* what reconcile would run next */
        }
        if (slow) { /* _reconcile_slow's common case here, then the sends */
            PyObject *acts = NULL;
            int done = reconcile_c(x, orders, native_q ? w : dw, native_q ? nw : nd, now, mid_floor, &acts);
            if (done < 0) goto out;
            if (done) {
                int r2 = PyList_GET_SIZE(acts) > 0 ? send_actions(x, rt, acts, now) : 0;
                Py_DECREF(acts);
                if (r2 < 0) goto out;
                Py_INCREF(Py_None);
                result = Py_None;
                goto out;
            }
        }
    }
    if (native_q && (desired = wants_list(x, w, nw)) == NULL) goto out;
    {
        PyObject *nowo = PyLong_FromLongLong(now), *mido = nowo ? PyLong_FromLongLong(mid_floor) : NULL;
        PyObject *actions = NULL;
        if (mido != NULL && clock_sync() == 0) {
            PyObject *args[5] = {orders, desired, nowo, mido, budget};
            actions = slow ? PyObject_VectorcallMethod(M_reconcile_slow, args, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
                           : PyObject_VectorcallMethod(M_reconcile, args, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        }
        Py_XDECREF(nowo);
        Py_XDECREF(mido);
        if (actions == NULL) goto out;
        int any = PyObject_IsTrue(actions);
        int r2 = any;
        if (any == 1) {
            r2 = send_actions(x, rt, actions, now);
        }
        Py_DECREF(actions);
        if (r2 < 0) goto out;
        Py_INCREF(Py_None);
        result = Py_None;
    }
out:
    wants_clear(w, nw);
    wants_clear(dw, nd);
    Py_XDECREF(desired);
    Py_XDECREF(orders);
    Py_XDECREF(budget);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}

/* Engine._on_local_market for a row, at local time now. */
static int deliver_row(Ctx *x, Py_ssize_t r, int64_t now) {
    PyObject *entry = PyTuple_GET_ITEM(x->runtimes, x->sym[r]);
    if (entry == Py_None) return 0;
    PyObject *rt = PyTuple_GET_ITEM(entry, 0), *book = PyTuple_GET_ITEM(entry, 1),
             *signals = PyTuple_GET_ITEM(entry, 2), *lbook = PyTuple_GET_ITEM(entry, 3);
    int k = x->kind[r];
    int64_t ts = x->ts[r];
    if (k == K_TRADE) {
        x->trades++;
        return on_trade(x, signals, ts, x->a[r], x->c[r]);
    }
    if (k == K_QUOTE) {
        PyObject *mid2o = NULL;
        int rc = touch(x, signals, ts, x->a[r], x->c[r], &mid2o);
        Py_XDECREF(mid2o);
        return rc;
    }
    NativeBook *nbk = (NativeBook *)book; /* checked by run() */
    if (k != K_DELTA || nbk->stale || odd_levels(x, r)) {
        int64_t ints[1] = {now};
        return call_with_row(x, x->engine, M_on_local, r, ints, 1);
    }
    if (apply_delta_nb(x, nbk, r, NULL, NULL) < 0) return -1;
    nbk->ts = ts;
    x->book_events++;
    int64_t bid, ask;
    int hb = nb_best(&nbk->side[NB_BIDS], &bid);
    int ha = nb_best(&nbk->side[NB_ASKS], &ask);
    PyObject *mid2o = NULL;
    if (hb && ha) {
        int rc = mark(x, rt, signals, lbook, ts, now, bid, ask, &mid2o);
        Py_XDECREF(mid2o);
        if (rc < 0) return -1;
    }
    /* Ledger.sample: cheap when nothing is due */
    int64_t nd;
    int rc = get_opt_i64(&A_led_next_due, x->ledger, &nd);
    if (rc < 0) return -1;
    if ((rc == 0 || now >= nd) && call_method(x->ledger, M_sample, NULL, 0, &now, 1) < 0) return -1;
    int64_t next;
    if (get_i64(&A_rt_next_decision, rt, &next) < 0) return -1;
    if (now >= next) {
        int paused = get_truth(&A_paused, x->engine);
        if (paused < 0) return -1;
        if (!paused) {
            if (decide(x, entry, now) < 0) return -1;
            next = x->interval ? (floor_div(now, x->interval) + 1) * x->interval : now;
            if (set_i64(&A_rt_next_decision, rt, next) < 0) return -1;
        }
    }
    return 0;
}

static int deliver(Ctx *x, PyObject *item, int64_t now) {
    if (PyLong_CheckExact(item)) {
        Py_ssize_t r = PyLong_AsSsize_t(item);
        if (r == -1 && PyErr_Occurred()) return -1;
        if (r >= 0 && r < x->rows) return deliver_row(x, r, now);
    }
    PyObject *objs[1] = {item};
    return call_method(x->engine, M_on_local, objs, 1, &now, 1);
}

/* The local FIFO's head, due at `when`, handed to the strategy side at local time
   max(_now, when) (the local clock never runs backwards). */
static int local_deliver(Ctx *x, int64_t when) {
    PyObject *item = NULL;
    Py_ssize_t row = -1;
    Py_ssize_t queued = x->dq_drained ? 0 : PyObject_Length(x->local);
    if (queued < 0) return -1;
    if (queued > 0) {
        item = PyObject_CallNoArgs(x->popleft);
        if (item == NULL) return -1;
    } else {
        row = (Py_ssize_t)x->rq_row[x->rq_head];
        x->rq_head = (x->rq_head + 1) % x->rq_cap;
        x->rq_len--;
    }
    int64_t now;
    int rc = now_get(x, &now);
    if (rc == 0 && when > now) {
        now = when;
        now_set(x, now);
    }
    if (rc == 0) rc = item != NULL ? deliver(x, PyTuple_GET_ITEM(item, 1), now) : deliver_row(x, row, now);
    Py_XDECREF(item);
    return rc;
}

/* ------------------------------------------------------------------ the loop */

/* Engine._collect after a simulator step that produced reports: with the stock
   FillSimulator.drain_reports and Engine._push_reports, the same steps here (the
   simulator's heap sorted by delivery time and production order, emptied, each report
   pushed onto the engine's heap with the engine's next sequence number); else the
   Python method. */
static int collect(Ctx *x) {
    PyObject *heap = x->sim_reports;
    Py_ssize_t n = PyList_GET_SIZE(heap);
    if (n == 0) return 0;
    if (!x->stock_collect) return call_method(x->engine, M_collect, NULL, 0, NULL, 0);
    if (PyList_Sort(heap) < 0) return -1;
    PyObject *out = PyList_GetSlice(heap, 0, n);
    if (out == NULL) return -1;
    int64_t seq = 0;
    int rc = PyList_SetSlice(heap, 0, n, NULL) < 0 || get_i64(&A_e_seq, x->engine, &seq) < 0 ? -1 : 0;
    int64_t seq0 = seq;
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        PyObject *it = PyList_GET_ITEM(out, i);
        if (!PyTuple_CheckExact(it) || PyTuple_GET_SIZE(it) != 3) {
            PyErr_SetString(PyExc_TypeError, "simulator reports must be (deliver_ns, seq, report) tuples");
            rc = -1;
            break;
        }
        seq++;
        PyObject *so = PyLong_FromLongLong(seq);
        PyObject *entry = so ? PyTuple_Pack(3, PyTuple_GET_ITEM(it, 0), so, PyTuple_GET_ITEM(it, 2)) : NULL;
        Py_XDECREF(so);
        PyObject *hargs[2] = {x->reports, entry};
        PyObject *res = entry ? PyObject_Vectorcall(heappush_fn, hargs, 2, NULL) : NULL;
        Py_XDECREF(entry);
        if (res == NULL) rc = -1;
        Py_XDECREF(res);
    }
    Py_DECREF(out);
    if (seq != seq0) { /* Engine._seq counts every push made, also before an error */
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        if (set_i64(&A_e_seq, x->engine, seq) < 0) rc = -1;
        if (et != NULL) {
            PyErr_Clear();
            PyErr_Restore(et, ev, tb);
        }
    }
    return rc;
}

/* ------------------------------------------------------------------ reports */

/* Engine._on_report for the two reports every order gets, with the stock engine and order
   manager methods (ctx's report kit): a create's ack (OrderManager._on_create_ack of an
   order still pending_new, unfilled, the ack confirming its price and size) and a cancel
   confirmation (OrderManager._finish, then Engine._finish's order record).  Anything else
   (fills, rejects, amend acks, an ack after our cancel, duplicates, unknown orders, a
   budget commitment the ack would change) goes to Engine._on_report, which decides the
   same way: every condition is checked before the first change. */
ATTR(A_r_cid, "client_id");
ATTR(A_r_op, "op");
ATTR(A_r_price, "price");
ATTR(A_r_qty, "qty");
ATTR(A_e_live, "_live");
ATTR(A_e_rt, "rt");
ATTR(A_e_records, "_records");
ATTR(A_e_replaces, "_replaces");
ATTR(A_c_reports, "reports");
ATTR(A_om_orders, "_orders");
ATTR(A_om_live, "_live");
ATTR(A_om_counters, "counters");
ATTR(A_om_replacing, "_replacing");
ATTR(A_om_det, "_det");
ATTR(A_om_n_detached, "_n_detached");
ATTR(A_om_finished, "_finished");
ATTR(A_om_params, "params");
ATTR(A_om_inverse, "_inverse");
ATTR(A_p_retention, "terminal_retention");
ATTR(A_oc_acked, "acked");
ATTR(A_oc_confirmed, "canceled_confirmed");
ATTR(A_oc_filled_orders, "filled_orders");
ATTR(A_oc_fills, "fills");
ATTR(A_f_cid, "client_id");
ATTR(A_rn_cid, "client_id");
ATTR(A_or_cid, "client_id");
ATTR(A_or_symbol, "symbol");
ATTR(A_or_side, "side");
ATTR(A_or_created, "created_ns");
ATTR(A_or_placed, "placed_ns");
ATTR(A_or_done, "done_ns");
ATTR(A_or_qty, "qty_lots");
ATTR(A_or_filled, "filled_lots");
ATTR(A_or_canceled, "canceled");
ATTR(A_or_rejected, "rejected");
ATTR(A_or_replaces, "replaces");
ATTR(A_f_price, "price");
ATTR(A_f_qty, "qty");
ATTR(A_f_cum, "cum_qty");
ATTR(A_lo_fill_keys, "fill_keys");
ATTR(A_lo_acked, "acked");
ATTR(A_lo_fill_lots, "fill_lots");
ATTR(A_lo_fill_units, "fill_units");
ATTR(A_lo_pending_qty, "pending_qty");
ATTR(A_lo_pending_price, "pending_price");
ATTR(A_lo_committed, "committed");
ATTR(A_lo_placed, "placed_ns");
ATTR(A_lo_updated, "updated_ns");
ATTR(A_lo_side_idx, "side_idx");
ATTR(A_lo_attached, "attached");

static Attr *REPORT_ATTRS[] = {
    &A_r_cid, &A_r_op, &A_r_price, &A_r_qty, &A_e_live, &A_e_rt, &A_e_records, &A_e_replaces, &A_c_reports,
    &A_om_orders, &A_om_live, &A_om_counters, &A_om_replacing, &A_om_det, &A_om_n_detached, &A_om_finished, &A_om_params, &A_om_inverse, &A_p_retention, &A_oc_acked, &A_oc_confirmed, &A_oc_filled_orders, &A_oc_fills, &A_f_cid, &A_rn_cid, &A_or_cid, &A_or_symbol, &A_or_side, &A_or_created, &A_or_placed, &A_or_done,
    &A_or_qty, &A_or_filled, &A_or_canceled, &A_or_rejected, &A_or_replaces, &A_f_price, &A_f_qty, &A_f_cum,
    &A_lo_fill_keys,
    &A_lo_acked, &A_lo_fill_lots, &A_lo_fill_units, &A_lo_pending_qty,
    &A_lo_pending_price, &A_lo_committed, &A_lo_placed, &A_lo_updated,
    &A_lo_side_idx, &A_lo_attached, NULL};

enum { KIT_ACK, KIT_CANCELED, KIT_OM, KIT_RECORD, KIT_CREATE, KIT_PENDING_NEW, KIT_OPEN, KIT_CANCELED_ST,
       KIT_FILLED, KIT_REJECTED, KIT_FILL, KIT_RECORD_T, KIT_SIZE };

/* index of obj in the list by identity (list.remove's match for our orders, whose __eq__
   is identity), or -1 */
static Py_ssize_t find_same(PyObject *lst, PyObject *obj) {
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(lst); k++)
        if (PyList_GET_ITEM(lst, k) == obj) return k;
    return -1;
}

/* list.remove(obj) by identity, with list.remove's error when it is not there */
static int remove_same(PyObject *lst, PyObject *obj) {
    Py_ssize_t k = find_same(lst, obj);
    if (k < 0) {
        PyErr_SetString(PyExc_ValueError, "list.remove(x): x not in list");
        return -1;
    }
    return PyList_SetSlice(lst, k, k + 1, NULL);
}

/* d[key] (borrowed) or NULL without an error when absent; -1 on error */
static int dict_get(PyObject *d, PyObject *key, PyObject **out) {
    if (!PyDict_Check(d)) {
        PyErr_SetString(PyExc_TypeError, "expected a dict");
        return -1;
    }
    *out = PyDict_GetItemWithError(d, key);
    return (*out == NULL && PyErr_Occurred()) ? -1 : 0;
}

/* an int attribute that must fit 64 bits: 1 read, 0 does not fit (the Python method
   decides), -1 error */
static int rd_int(Attr *a, PyObject *obj, int64_t *out) {
    PyObject *v = aget(a, obj);
    if (v == NULL) return -1;
    int ok = PyLong_CheckExact(v);
    if (ok) {
        int overflow = 0;
        *out = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow) ok = 0;
    }
    Py_DECREF(v);
    if (ok && *out == -1 && PyErr_Occurred()) return -1;
    return ok;
}

static int is_terminal(PyObject *kit, PyObject *state) {
    return same_str(state, PyTuple_GET_ITEM(kit, KIT_FILLED)) || same_str(state, PyTuple_GET_ITEM(kit, KIT_CANCELED_ST)) ||
           same_str(state, PyTuple_GET_ITEM(kit, KIT_REJECTED));
}

/* lst[i] = lst[i] + d for a list of ints (the order manager's per-side sums) */
static int list_add(PyObject *lst, Py_ssize_t i, PyObject *d, int negate) {
    if (!PyList_CheckExact(lst) || i < 0 || i >= PyList_GET_SIZE(lst)) {
        PyErr_SetString(PyExc_TypeError, "per-side sums must be lists of two ints");
        return -1;
    }
    PyObject *cur = PyList_GET_ITEM(lst, i);
    PyObject *v = negate ? PyNumber_Subtract(cur, d) : PyNumber_Add(cur, d);
    if (v == NULL) return -1;
    PyList_SET_ITEM(lst, i, v);
    Py_DECREF(cur);
    return 0;
}

/* OrderManager._finish(o, CANCELED, t) */
static int om_finish(PyObject *kit, PyObject *om, PyObject *o, PyObject *cid, PyObject *t, int filled) {
    int64_t si;
    if (get_i64(&A_lo_side_idx, o, &si) < 0) return -1;
    PyObject *committed = aget(&A_lo_committed, o);
    if (committed == NULL) return -1;
    int rc = -1, attached = get_truth(&A_lo_attached, o);
    PyObject *att = NULL, *det = NULL, *tot = NULL, *live = NULL, *repl = NULL, *fin = NULL, *orders = NULL,
             *params = NULL, *r = NULL;
    if (attached < 0) goto out;
    if (attached) {
        att = aget(&A_om_att, om);
        if (att == NULL) goto out;
        PyObject *lst = PyTuple_Check(att) && si >= 0 && si < PyTuple_GET_SIZE(att) ? PyTuple_GET_ITEM(att, si) : NULL;
        if (lst == NULL || !PyList_CheckExact(lst)) {
            PyErr_SetString(PyExc_TypeError, "OrderManager._att must be a pair of lists");
            goto out;
        }
        if (remove_same(lst, o) < 0 || aset(&A_lo_attached, o, Py_False) < 0) goto out;
    } else {
        int64_t nd;
        if ((det = aget(&A_om_det, om)) == NULL || list_add(det, si, committed, 1) < 0 ||
            get_i64(&A_om_n_detached, om, &nd) < 0 || set_i64(&A_om_n_detached, om, nd - 1) < 0)
            goto out;
    }
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) goto out;
    int bad = (tot = aget(&A_om_tot, om)) == NULL || list_add(tot, si, committed, 1) < 0 ||
              aset(&A_lo_committed, o, zero) < 0 ||
              aset(&A_lo_state, o, PyTuple_GET_ITEM(kit, filled ? KIT_FILLED : KIT_CANCELED_ST)) < 0 ||
              aset(&A_lo_updated, o, t) < 0 || aset(&A_lo_pending_price, o, zero) < 0 ||
              aset(&A_lo_pending_qty, o, zero) < 0;
    Py_DECREF(zero);
    if (bad || (live = aget(&A_om_live, om)) == NULL || (repl = aget(&A_om_replacing, om)) == NULL) goto out;
    if (!PyDict_Check(live) || !PySet_Check(repl)) {
        PyErr_SetString(PyExc_TypeError, "OrderManager._live must be a dict and _replacing a set");
        goto out;
    }
    if (PyDict_DelItem(live, cid) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError)) goto out;
        PyErr_Clear();
    }
    if (PySet_Discard(repl, cid) < 0) goto out;
    if (filled) {
        PyObject *oc = aget(&A_om_counters, om);
        int b = oc == NULL ? -1 : bump(oc, &A_oc_filled_orders, 1);
        Py_XDECREF(oc);
        if (b < 0) goto out;
    }
    /* the finished ids, the oldest forgotten beyond terminal_retention */
    if ((fin = aget(&A_om_finished, om)) == NULL || (orders = aget(&A_om_orders, om)) == NULL ||
        (params = aget(&A_om_params, om)) == NULL)
        goto out;
    int64_t keep;
    if (get_i64(&A_p_retention, params, &keep) < 0) goto out;
    r = PyObject_CallMethodOneArg(fin, M_append, cid);
    if (r == NULL) goto out;
    for (;;) {
        Py_ssize_t n = PyObject_Length(fin);
        if (n < 0) goto out;
        if (n <= keep) break;
        PyObject *old = PyObject_CallMethodNoArgs(fin, M_popleft);
        if (old == NULL) goto out;
        PyObject *gone;
        int g = dict_get(orders, old, &gone);
        if (g == 0 && gone != NULL) {
            PyObject *st = aget(&A_lo_state, gone);
            g = st == NULL ? -1 : 0;
            if (st != NULL && is_terminal(kit, st)) g = PyDict_DelItem(orders, old);
            Py_XDECREF(st);
        }
        Py_DECREF(old);
        if (g < 0) goto out;
    }
    rc = 0;
out:
    Py_DECREF(committed);
    Py_XDECREF(att);
    Py_XDECREF(det);
    Py_XDECREF(tot);
    Py_XDECREF(live);
    Py_XDECREF(repl);
    Py_XDECREF(fin);
    Py_XDECREF(orders);
    Py_XDECREF(params);
    Py_XDECREF(r);
    return rc;
}

static PyObject *new_slotted(PyTypeObject *tp, Attr **attrs, PyObject **vals, int n);
static Attr *RECORD_SLOTS[] = {&A_or_cid, &A_or_symbol, &A_or_side, &A_or_created, &A_or_placed, &A_or_done,
                               &A_or_qty, &A_or_filled, &A_or_canceled, &A_or_rejected, &A_or_replaces};

/* Engine._finish(cid, order, now) for an order the manager just finished as canceled */
static int engine_finish(Ctx *x, PyObject *kit, PyObject *o, PyObject *cid, PyObject *live_tuple, PyObject *t,
                         int canceled) {
    int rc = -1;
    PyObject *elive = aget(&A_e_live, x->engine), *replaces = NULL, *records = NULL, *nrep = NULL, *rec = NULL;
    PyObject *placed = NULL, *qty = NULL, *filled = NULL;
    Py_INCREF(live_tuple); /* the dict's reference goes with the pop below */
    if (elive == NULL || PyDict_DelItem(elive, cid) < 0) goto out;
    if ((replaces = aget(&A_e_replaces, x->engine)) == NULL || (records = aget(&A_e_records, x->engine)) == NULL) goto out;
    if (!PyDict_Check(replaces) || !PyDict_Check(records)) {
        PyErr_SetString(PyExc_TypeError, "Engine._replaces and _records must be dicts");
        goto out;
    }
    nrep = PyDict_GetItemWithError(replaces, cid);
    if (nrep != NULL) {
        Py_INCREF(nrep);
        if (PyDict_DelItem(replaces, cid) < 0) goto out;
    } else {
        if (PyErr_Occurred() || (nrep = PyLong_FromLong(0)) == NULL) goto out;
    }
    if ((placed = aget(&A_lo_placed, o)) == NULL || (qty = aget(&A_lo_qty, o)) == NULL ||
        (filled = aget(&A_lo_filled, o)) == NULL)
        goto out;
    PyObject *args[11] = {cid, PyTuple_GET_ITEM(live_tuple, 0), PyTuple_GET_ITEM(live_tuple, 1),
                          PyTuple_GET_ITEM(live_tuple, 2), placed, t, qty, filled, canceled ? Py_True : Py_False,
                          Py_False, nrep};
    PyObject *rt_ = PyTuple_GET_ITEM(kit, KIT_RECORD_T);
    rec = rt_ != Py_None ? new_slotted((PyTypeObject *)rt_, RECORD_SLOTS, args, 11) /* the stock builder's result */
                         : PyObject_Vectorcall(PyTuple_GET_ITEM(kit, KIT_RECORD), args, 11, NULL);
    if (rec == NULL || PyDict_SetItem(records, cid, rec) < 0) goto out;
    rc = 0;
out:
    Py_DECREF(live_tuple);
    Py_XDECREF(elive);
    Py_XDECREF(replaces);
    Py_XDECREF(records);
    Py_XDECREF(nrep);
    Py_XDECREF(rec);
    Py_XDECREF(placed);
    Py_XDECREF(qty);
    Py_XDECREF(filled);
    return rc;
}

/* The checks of a create's ack: 1 = the fast path applies, 0 = the Python method, -1 error */
static int ack_plain(PyObject *kit, PyObject *om, PyObject *o, PyObject *rep) {
    PyObject *st = aget(&A_lo_state, o);
    if (st == NULL) return -1;
    int pn = same_str(st, PyTuple_GET_ITEM(kit, KIT_PENDING_NEW));
    Py_DECREF(st);
    if (!pn) return 0;
    int acked = get_truth(&A_lo_acked, o);
    if (acked != 0) return acked < 0 ? -1 : 0;
    int64_t filled, fl, fu, pq, price, qty, committed, rp, rq;
    int rc;
    if ((rc = rd_int(&A_lo_filled, o, &filled)) <= 0 || (rc = rd_int(&A_lo_fill_lots, o, &fl)) <= 0 ||
        (rc = rd_int(&A_lo_fill_units, o, &fu)) <= 0 || (rc = rd_int(&A_lo_pending_qty, o, &pq)) <= 0 ||
        (rc = rd_int(&A_lo_price, o, &price)) <= 0 || (rc = rd_int(&A_lo_qty, o, &qty)) <= 0 ||
        (rc = rd_int(&A_lo_committed, o, &committed)) <= 0 || (rc = rd_int(&A_r_price, rep, &rp)) <= 0 ||
        (rc = rd_int(&A_r_qty, rep, &rq)) <= 0)
        return rc;
    if (filled != 0 || fl != 0 || fu != 0 || pq != 0 || qty <= 0 || (rp && rp != price) || (rq && rq != qty)) return 0;
    int inverse = get_truth(&A_om_inverse, om);
    if (inverse < 0) return -1;
    /* _recommit would find the commitment unchanged: qty lots at the limit price */
    int64_t units = qty;
    if (!inverse && __builtin_mul_overflow(price, qty, &units)) return 0;
    return units == committed;
}


static PyObject *M_book_fill;

/* An int attribute as an int64, 1; 0 when it is not an exact int within 64 bits */
#define RD(attr, obj, var) (rd_int(attr, obj, &(var)))

/* Engine._on_report for a fill that completes its order (OrderManager._on_fill, its
   finish as filled, Engine._book_fill through its Python method: the exact ledger entry,
   the signals and the position book, then the engine's order record).  1 done, 0 the
   Python method's case (a partial fill, a repeat, an order already finished, a value
   beyond 64 bits; nothing changed), -1 error. */
static int fill_report(Ctx *x, PyObject *kit, PyObject *rep, PyObject *cid, PyObject *live_tuple, PyObject *rt,
                       PyObject *om, PyObject *o, int64_t now) {
    int64_t cum, qty, price, filled, oqty, pq, fl, fu, placed, priced, units;
    int r;
    if ((r = RD(&A_f_cum, rep, cum)) <= 0 || (r = RD(&A_f_qty, rep, qty)) <= 0 || (r = RD(&A_f_price, rep, price)) <= 0 ||
        (r = RD(&A_lo_filled, o, filled)) <= 0 || (r = RD(&A_lo_qty, o, oqty)) <= 0 ||
        (r = RD(&A_lo_pending_qty, o, pq)) <= 0 || (r = RD(&A_lo_fill_lots, o, fl)) <= 0 ||
        (r = RD(&A_lo_fill_units, o, fu)) <= 0 || (r = RD(&A_lo_placed, o, placed)) <= 0 ||
        (r = RD(&A_lo_priced, o, priced)) <= 0)
        return r;
    if (cum <= 0) return 0;
    PyObject *params = aget(&A_om_params, om);
    int64_t keep = 0;
    int kr = params == NULL ? -1 : rd_int(&A_p_retention, params, &keep);
    Py_XDECREF(params);
    if (kr <= 0 || keep < 1) return kr < 0 ? -1 : 0; /* the order would be forgotten at once */
    PyObject *st = aget(&A_lo_state, o);
    if (st == NULL) return -1;
    int term = is_terminal(kit, st);
    Py_DECREF(st);
    if (term) return 0;
    int64_t nf = cum > filled ? cum : filled;
    if (!(nf >= oqty && (pq == 0 || nf >= pq))) return 0; /* a partial fill: Python */
    int inverse = get_truth(&A_om_inverse, om);
    if (inverse < 0) return -1;
    if (inverse) units = qty;
    else if (__builtin_mul_overflow(price, qty, &units)) return 0;
    int64_t nfl, nfu;
    if (__builtin_add_overflow(fl, qty, &nfl) || __builtin_add_overflow(fu, units, &nfu)) return 0;
    PyObject *keys = aget(&A_lo_fill_keys, o), *cumo = aget(&A_f_cum, rep);
    if (keys == NULL || cumo == NULL) {
        Py_XDECREF(keys);
        Py_XDECREF(cumo);
        return -1;
    }
    int seen = keys == Py_None ? 0 : PySet_Check(keys) ? PySet_Contains(keys, cumo) : -2;
    if (seen != 0) { /* a repeat (or keys of another kind): Python */
        Py_DECREF(keys);
        Py_DECREF(cumo);
        return seen == -1 ? -1 : 0;
    }
    /* the order manager's _on_fill, then its finish */
    int rc = -1;
    PyObject *t = PyLong_FromLongLong(now), *ecounters = NULL, *ocounters = NULL, *res = NULL;
    if (t == NULL) goto out;
    if (keys == Py_None) {
        PyObject *ns = PySet_New(NULL);
        int bad = ns == NULL || PySet_Add(ns, cumo) < 0 || aset(&A_lo_fill_keys, o, ns) < 0;
        Py_XDECREF(ns);
        if (bad) goto out;
    } else if (PySet_Add(keys, cumo) < 0) {
        goto out;
    }
    if ((cum > filled && aset(&A_lo_filled, o, cumo) < 0) || set_i64(&A_lo_fill_lots, o, nfl) < 0 ||
        set_i64(&A_lo_fill_units, o, nfu) < 0 || aset(&A_lo_updated, o, t) < 0)
        goto out;
    if ((ecounters = aget(&A_counters, x->engine)) == NULL || (ocounters = aget(&A_om_counters, om)) == NULL ||
        bump(ecounters, &A_c_reports, 1) < 0 || bump(ocounters, &A_oc_fills, 1) < 0)
        goto out;
    if ((placed == 0 && aset(&A_lo_placed, o, t) < 0) || (priced == 0 && aset(&A_lo_priced, o, t) < 0)) goto out;
    Py_INCREF(o); /* _finish may drop it from _orders */
    r = om_finish(kit, om, o, cid, t, 1);
    if (r == 0) { /* Engine._book_fill(rt, fill): the ledger, signals, positions, hooks */
        PyObject *objs[2] = {rt, rep};
        r = call_method(x->engine, M_book_fill, objs, 2, NULL, 0);
    }
    if (r == 0) r = engine_finish(x, kit, o, cid, live_tuple, t, 0);
    Py_DECREF(o);
    if (r < 0) goto out;
    rc = 1;
out:
    Py_DECREF(keys);
    Py_DECREF(cumo);
    Py_XDECREF(t);
    Py_XDECREF(ecounters);
    Py_XDECREF(ocounters);
    Py_XDECREF(res);
    return rc;
}

static int on_report(Ctx *x, PyObject *rep, int64_t now) {
    PyObject *kit = x->report_kit;
    PyTypeObject *tp = Py_TYPE(rep);
    if (kit == NULL || (tp != (PyTypeObject *)PyTuple_GET_ITEM(kit, KIT_ACK) &&
                        tp != (PyTypeObject *)PyTuple_GET_ITEM(kit, KIT_CANCELED) &&
                        tp != (PyTypeObject *)PyTuple_GET_ITEM(kit, KIT_FILL)))
        return call_method(x->engine, M_on_report, &rep, 1, &now, 1);
    int is_ack = tp == (PyTypeObject *)PyTuple_GET_ITEM(kit, KIT_ACK);
    int is_fill = tp == (PyTypeObject *)PyTuple_GET_ITEM(kit, KIT_FILL);
    int rc = -1, fast = 0;
    PyObject *cid = aget(is_ack ? &A_r_cid : is_fill ? &A_f_cid : &A_rn_cid, rep), *elive = NULL, *ert = NULL,
             *om = NULL, *orders = NULL, *t = NULL;
    PyObject *live_tuple, *rt, *o;
    if (cid == NULL || (elive = aget(&A_e_live, x->engine)) == NULL || dict_get(elive, cid, &live_tuple) < 0) goto out;
    if (live_tuple == NULL || !PyTuple_CheckExact(live_tuple) || PyTuple_GET_SIZE(live_tuple) != 4) goto slow;
    if ((ert = aget(&A_e_rt, x->engine)) == NULL || dict_get(ert, PyTuple_GET_ITEM(live_tuple, 0), &rt) < 0) goto out;
    if (rt == NULL) goto slow;
    if ((om = aget(&A_rt_orders, rt)) == NULL) goto out;
    if (Py_TYPE(om) != (PyTypeObject *)PyTuple_GET_ITEM(kit, KIT_OM)) goto slow;
    if ((orders = aget(&A_om_orders, om)) == NULL || dict_get(orders, cid, &o) < 0) goto out;
    if (o == NULL) goto slow;
    if (is_fill) {
        int done = fill_report(x, kit, rep, cid, live_tuple, rt, om, o, now);
        if (done < 0) goto out;
        if (!done) goto slow;
        rc = 0;
        goto out;
    }
    if (is_ack) {
        PyObject *op = aget(&A_r_op, rep);
        if (op == NULL) goto out;
        int create = same_str(op, PyTuple_GET_ITEM(kit, KIT_CREATE));
        Py_DECREF(op);
        if (!create) goto slow;
        int ok = ack_plain(kit, om, o, rep);
        if (ok < 0) goto out;
        if (!ok) goto slow;
    } else {
        PyObject *st = aget(&A_lo_state, o);
        if (st == NULL) goto out;
        int term = is_terminal(kit, st);
        Py_DECREF(st);
        if (term) goto slow;
        PyObject *params = aget(&A_om_params, om);
        int64_t keep = 0;
        int kr = params == NULL ? -1 : rd_int(&A_p_retention, params, &keep);
        Py_XDECREF(params);
        if (kr < 0) goto out;
        if (kr == 0 || keep < 1) goto slow; /* the order itself would be forgotten at once */
    }
    fast = 1;
    PyObject *ecounters = aget(&A_counters, x->engine), *ocounters = aget(&A_om_counters, om);
    int bad = ecounters == NULL || ocounters == NULL || bump(ecounters, &A_c_reports, 1) < 0 ||
              bump(ocounters, is_ack ? &A_oc_acked : &A_oc_confirmed, 1) < 0;
    Py_XDECREF(ecounters);
    Py_XDECREF(ocounters);
    if (bad || (t = PyLong_FromLongLong(now)) == NULL) goto out;
    if (is_ack) {
        int64_t placed, priced;
        if (aset(&A_lo_acked, o, Py_True) < 0 || get_i64(&A_lo_placed, o, &placed) < 0 ||
            (placed == 0 && aset(&A_lo_placed, o, t) < 0) || get_i64(&A_lo_priced, o, &priced) < 0 ||
            (priced == 0 && aset(&A_lo_priced, o, t) < 0) || aset(&A_lo_updated, o, t) < 0 ||
            aset(&A_lo_state, o, PyTuple_GET_ITEM(kit, KIT_OPEN)) < 0)
            goto out;
        PyObject *repl = aget(&A_om_replacing, om);
        int d = repl == NULL ? -1 : PySet_Discard(repl, cid);
        Py_XDECREF(repl);
        if (d < 0) goto out;
        rc = 0; /* open: OrderManager.finished gives None, no record */
        goto out;
    }
    Py_INCREF(o); /* _finish may drop it from _orders */
    rc = om_finish(kit, om, o, cid, t, 0) < 0 ? -1 : engine_finish(x, kit, o, cid, live_tuple, t, 1);
    Py_DECREF(o);
    goto out;
slow:
    rc = call_method(x->engine, M_on_report, &rep, 1, &now, 1);
out:
    (void)fast;
    Py_XDECREF(cid);
    Py_XDECREF(elive);
    Py_XDECREF(ert);
    Py_XDECREF(om);
    Py_XDECREF(orders);
    Py_XDECREF(t);
    return rc;
}

/* ------------------------------------------------------------------ arrivals */

/* FillSimulator.process_arrivals with the stock simulator methods (ctx's arrival kit):
   a create that passes the order checks, is new and does not cross rests behind the
   visible size and is acked (_on_create, _rest, _emit); a cancel of a resting order is
   confirmed (_on_cancel, _unrest, _done, _remember, _emit).  Anything else (amends,
   rejects, duplicates, a create that crosses) goes to the Python method of that one
   arrival, checked before the first change. */
ATTR(A_sim_counters, "counters");
ATTR(A_sc_arrivals, "arrivals");
ATTR(A_sc_acks, "acks");
ATTR(A_sc_cancels, "cancels");
ATTR(A_sim_live, "_live");
ATTR(A_sim_finished, "_finished");
ATTR(A_sim_inflight, "_inflight");
ATTR(A_sim_last_arrival, "_last_arrival");
ATTR(A_sim_last_delivery, "_last_delivery");
ATTR(A_sim_syms, "_syms");
ATTR(A_sim_join_seq, "_join_seq");
ATTR(A_sim_rseq, "_rseq");
ATTR(A_sim_preserve, "_preserve");
ATTR(A_sim_latency, "latency");
ATTR(A_sim_rng, "_rng");
ATTR(A_sim_queue, "queue");
ATTR(A_sim_params, "params");
ATTR(A_sp_retention, "retention");
ATTR(A_a_cid, "client_id");
ATTR(A_a_symbol, "symbol");
ATTR(A_a_side, "side");
ATTR(A_a_price, "price");
ATTR(A_a_qty, "qty");
ATTR(A_a_post_only, "post_only");
ATTR(A_x_cid, "client_id");
ATTR(A_x_reason, "reason");
ATTR(A_o_cid, "cid");
ATTR(A_o_symbol, "symbol");
ATTR(A_o_side, "side");
ATTR(A_o_price, "price");
ATTR(A_o_post_only, "post_only");
ATTR(A_o_seq, "seq");
ATTR(A_o_rested, "rested_ns");
ATTR(A_o_resting, "resting");
ATTR(A_k_ts, "ts");
ATTR(A_k_cid, "client_id");
ATTR(A_k_op, "op");
ATTR(A_k_price, "price");
ATTR(A_k_qty, "qty");
ATTR(A_n_ts, "ts");
ATTR(A_n_cid, "client_id");
ATTR(A_n_reason, "reason");

static Attr *ARRIVAL_ATTRS[] = {
    &A_sim_counters, &A_sc_arrivals, &A_sc_acks, &A_sc_cancels, &A_sim_live, &A_sim_finished, &A_sim_inflight,
    &A_sim_last_arrival, &A_sim_last_delivery, &A_sim_syms, &A_sim_join_seq, &A_sim_rseq, &A_sim_preserve,
    &A_sim_latency, &A_sim_rng, &A_sim_queue, &A_sim_params, &A_sp_retention, &A_a_cid, &A_a_symbol, &A_a_side,
    &A_a_price, &A_a_qty, &A_a_post_only, &A_x_cid, &A_x_reason, &A_o_cid, &A_o_symbol, &A_o_side, &A_o_price,
    &A_o_post_only, &A_o_seq, &A_o_rested, &A_o_resting, &A_k_ts, &A_k_cid, &A_k_op, &A_k_price, &A_k_qty, &A_n_ts,
    &A_n_cid, &A_n_reason, NULL};

enum { AK_CREATE_T, AK_CANCEL_T, AK_ORDER_T, AK_ACK_T, AK_CANCELED_T, AK_OP_CREATE, AK_OP_CANCEL, AK_CANCELED_REASON,
       AK_NEG, AK_POS, AK_RESPONSE, AK_JOIN_VISIBLE, AK_SIZE };

static PyObject *M_on_create, *M_on_cancel, *M_on_amend, *M_response_ns, *M_on_join, *M_popitem;

/* d[key] = v as a Python int */
static int set_dict_i64(PyObject *d, PyObject *key, int64_t v) {
    PyObject *o = PyLong_FromLongLong(v);
    if (o == NULL) return -1;
    int rc = PyDict_SetItem(d, key, o);
    Py_DECREF(o);
    return rc;
}

/* The simulator's ordering state of an order (its last arrival and delivery times),
   dropped once nothing of it is in flight and it is not live (pop(cid, None) of both) */
static int forget_timing(Ctx *x, PyObject *cid) {
    Attr *dicts[2] = {&A_sim_last_arrival, &A_sim_last_delivery};
    for (int i = 0; i < 2; i++) {
        PyObject *d = aget(dicts[i], x->sim);
        int r = d == NULL ? -1 : PyDict_DelItem(d, cid);
        Py_XDECREF(d);
        if (r < 0) {
            if (!PyErr_ExceptionMatches(PyExc_KeyError)) return -1;
            PyErr_Clear();
        }
    }
    return 0;
}

/* FillSimulator.now_ns as the loop knows it */
static int sim_now_get(Ctx *x, int64_t *v) {
    if (x->sim_now_dirty) {
        *v = x->sim_now;
        return 0;
    }
    return get_i64(&A_sim_now, x->sim, v);
}

/* a new instance of a __slots__ class with the slots set from vals (borrowed), without
   running its __init__ (the values are the ones __init__ would set) */
static PyObject *new_slotted(PyTypeObject *tp, Attr **attrs, PyObject **vals, int n) {
    PyObject *obj = tp->tp_alloc(tp, 0);
    if (obj == NULL) return NULL;
    for (int i = 0; i < n; i++) {
        if (Py_TYPE(obj) != attrs[i]->type) attr_resolve(attrs[i], Py_TYPE(obj));
        if (attrs[i]->off < 0) {
            Py_DECREF(obj);
            PyErr_Format(PyExc_TypeError, "%s has no slot %s", tp->tp_name, attrs[i]->text);
            return NULL;
        }
        PyObject **slot = (PyObject **)((char *)obj + attrs[i]->off);
        Py_INCREF(vals[i]);
        Py_XSETREF(*slot, vals[i]);
    }
    return obj;
}

/* FillSimulator._emit(ts, report, op): onto the simulator's report heap after the
   response latency (never before an earlier report of the order with preserve_order) */
static int sim_emit(Ctx *x, PyObject *kit, int64_t ts, PyObject *cid, PyObject *report, PyObject *op) {
    int64_t lat;
    PyObject *resp = PyTuple_GET_ITEM(kit, AK_RESPONSE);
    if (resp != Py_None) {
        PyObject *v = PyDict_GetItemWithError(resp, op);
        if (v == NULL) {
            if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, op);
            return -1;
        }
        lat = as_i64(v);
        if (lat == -1 && PyErr_Occurred()) return -1;
    } else {
        PyObject *latency = aget(&A_sim_latency, x->sim), *rng = latency ? aget(&A_sim_rng, x->sim) : NULL;
        PyObject *t = rng ? PyLong_FromLongLong(ts) : NULL, *v = NULL;
        if (t != NULL) {
            PyObject *args[4] = {latency, op, t, rng};
            if (clock_sync() == 0)
                v = PyObject_VectorcallMethod(M_response_ns, args, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        }
        Py_XDECREF(latency);
        Py_XDECREF(rng);
        Py_XDECREF(t);
        if (v == NULL) return -1;
        lat = as_i64(v);
        Py_DECREF(v);
        if (lat == -1 && PyErr_Occurred()) return -1;
    }
    int64_t deliver = ts + lat;
    int preserve = get_truth(&A_sim_preserve, x->sim);
    if (preserve < 0) return -1;
    if (preserve) {
        PyObject *ld = aget(&A_sim_last_delivery, x->sim);
        if (ld == NULL) return -1;
        PyObject *last;
        int rc = dict_get(ld, cid, &last);
        if (rc == 0 && last != NULL) {
            int64_t l = as_i64(last);
            if (l == -1 && PyErr_Occurred()) rc = -1;
            else if (deliver < l) deliver = l;
        }
        if (rc == 0) {
            PyObject *d = PyLong_FromLongLong(deliver);
            rc = d == NULL ? -1 : PyDict_SetItem(ld, cid, d);
            Py_XDECREF(d);
        }
        Py_DECREF(ld);
        if (rc < 0) return -1;
    }
    int64_t rseq;
    if (get_i64(&A_sim_rseq, x->sim, &rseq) < 0) return -1;
    PyObject *d = PyLong_FromLongLong(deliver), *s = d ? PyLong_FromLongLong(rseq) : NULL;
    PyObject *entry = s ? PyTuple_Pack(3, d, s, report) : NULL;
    Py_XDECREF(d);
    Py_XDECREF(s);
    PyObject *hargs[2] = {x->sim_reports, entry};
    PyObject *res = entry ? PyObject_Vectorcall(heappush_fn, hargs, 2, NULL) : NULL;
    Py_XDECREF(entry);
    if (res == NULL) return -1;
    Py_DECREF(res);
    return set_i64(&A_sim_rseq, x->sim, rseq + 1);
}

static Attr *ORDER_SLOTS[] = {&A_o_cid, &A_o_symbol, &A_o_side, &A_o_price, &A_o_qty, &A_o_filled, &A_o_post_only,
                              &A_o_ahead, &A_o_traded, &A_o_seq, &A_o_rested, &A_o_resting};
static Attr *ACK_SLOTS[] = {&A_k_ts, &A_k_cid, &A_k_op, &A_k_price, &A_k_qty};
static Attr *CANCELED_SLOTS[] = {&A_n_ts, &A_n_cid, &A_n_reason};

/* a create arriving at ts: 1 done, 0 the Python method's case (nothing changed), -1 error */
static int arrive_create(Ctx *x, PyObject *kit, PyObject *a, int64_t ts) {
    int rc = -1;
    PyObject *cid = aget(&A_a_cid, a), *sym = NULL, *side = NULL, *price = NULL, *qty = NULL, *po = NULL;
    PyObject *live = NULL, *fin = NULL, *syms = NULL, *book = NULL, *mine = NULL, *o = NULL, *tso = NULL,
             *ahead = NULL, *seqo = NULL, *ack = NULL, *counters = NULL;
    if (cid == NULL || (sym = aget(&A_a_symbol, a)) == NULL || (side = aget(&A_a_side, a)) == NULL ||
        (price = aget(&A_a_price, a)) == NULL || (qty = aget(&A_a_qty, a)) == NULL ||
        (po = aget(&A_a_post_only, a)) == NULL || (live = aget(&A_sim_live, x->sim)) == NULL ||
        (fin = aget(&A_sim_finished, x->sim)) == NULL || (syms = aget(&A_sim_syms, x->sim)) == NULL)
        goto out;
    rc = 0;
    if (!PyUnicode_CheckExact(cid) || !PyDict_CheckExact(live) || !PyLong_CheckExact(side) ||
        !PyLong_CheckExact(price) || !PyLong_CheckExact(qty))
        goto out;
    int known = PyDict_Contains(live, cid);
    if (known == 0) known = PySequence_Contains(fin, cid);
    if (known != 0) {
        rc = known < 0 ? -1 : 0;
        goto out;
    }
    int overflow = 0;
    int64_t sd = PyLong_AsLongLongAndOverflow(side, &overflow), px = 0, q = 0;
    if (!overflow) px = PyLong_AsLongLongAndOverflow(price, &overflow);
    if (!overflow) q = PyLong_AsLongLongAndOverflow(qty, &overflow);
    if (overflow || (sd != 1 && sd != -1) || px <= 0 || q <= 0) goto out; /* _check_order's rejects, or beyond int64 */
    PyObject *st;
    if (dict_get(syms, sym, &st) < 0) {
        rc = -1;
        goto out;
    }
    if (st == NULL || (book = aget(&A_st_book, st)) == NULL) {
        rc = st == NULL ? 0 : -1;
        goto out;
    }
    if (!PyObject_TypeCheck(book, NB_TYPE)) goto out;
    NativeBook *nbk = (NativeBook *)book;
    int64_t best;
    if (nb_best(&nbk->side[sd > 0 ? NB_ASKS : NB_BIDS], &best) && (sd > 0 ? px >= best : px <= best))
        goto out; /* crosses on arrival: a post-only reject or a taker walk */
    if ((mine = aget(sd > 0 ? &A_st_bids : &A_st_asks, st)) == NULL || !PyDict_CheckExact(mine)) {
        rc = mine == NULL ? -1 : 0;
        goto out;
    }
    /* from here on the arrival is ours: _on_create, _rest, the ack */
    rc = -1;
    int64_t visible = nb_get(&nbk->side[sd > 0 ? NB_BIDS : NB_ASKS], px), jseq, n;
    PyObject *queue = NULL;
    if ((ahead = PyLong_FromLongLong(visible)) == NULL) goto out;
    if (PyTuple_GET_ITEM(kit, AK_JOIN_VISIBLE) != Py_True) { /* queue.on_join(visible) */
        if ((queue = aget(&A_sim_queue, x->sim)) == NULL || clock_sync() < 0) {
            Py_XDECREF(queue);
            goto out;
        }
        PyObject *args[2] = {queue, ahead};
        PyObject *r = PyObject_VectorcallMethod(M_on_join, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(queue);
        if (r == NULL) goto out;
        Py_SETREF(ahead, r);
    }
    if (get_i64(&A_sim_join_seq, x->sim, &jseq) < 0 || set_i64(&A_sim_join_seq, x->sim, jseq + 1) < 0 ||
        (seqo = PyLong_FromLongLong(jseq + 1)) == NULL || (tso = PyLong_FromLongLong(ts)) == NULL)
        goto out;
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) goto out;
    PyObject *vals[12] = {cid, sym, side, price, qty, zero, po, ahead, zero, seqo, tso, Py_True};
    o = new_slotted((PyTypeObject *)PyTuple_GET_ITEM(kit, AK_ORDER_T), ORDER_SLOTS, vals, 12);
    Py_DECREF(zero);
    if (o == NULL || PyDict_SetItem(live, cid, o) < 0) goto out;
    PyObject *lst;
    if (dict_get(mine, price, &lst) < 0) goto out;
    if (lst == NULL) {
        PyObject *nl = PyList_New(1);
        if (nl == NULL) goto out;
        Py_INCREF(o);
        PyList_SET_ITEM(nl, 0, o);
        int r = PyDict_SetItem(mine, price, nl);
        Py_DECREF(nl);
        if (r < 0) goto out;
    } else if (!PyList_CheckExact(lst) || PyList_Append(lst, o) < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "our orders at a price must be a list");
        goto out;
    }
    int64_t lim;
    Attr *la = sd > 0 ? &A_st_max_bid : &A_st_min_ask;
    if (get_i64(la, st, &lim) < 0 || ((sd > 0 ? px > lim : px < lim) && aset(la, st, price) < 0) ||
        get_i64(&A_st_n, st, &n) < 0 || set_i64(&A_st_n, st, n + 1) < 0)
        goto out;
    if ((counters = aget(&A_sim_counters, x->sim)) == NULL || bump(counters, &A_sc_acks, 1) < 0) goto out;
    PyObject *avals[5] = {tso, cid, PyTuple_GET_ITEM(kit, AK_OP_CREATE), price, qty};
    ack = new_slotted((PyTypeObject *)PyTuple_GET_ITEM(kit, AK_ACK_T), ACK_SLOTS, avals, 5);
    if (ack == NULL || sim_emit(x, kit, ts, cid, ack, PyTuple_GET_ITEM(kit, AK_OP_CREATE)) < 0) goto out;
    rc = 1;
out:
    Py_XDECREF(cid);
    Py_XDECREF(sym);
    Py_XDECREF(side);
    Py_XDECREF(price);
    Py_XDECREF(qty);
    Py_XDECREF(po);
    Py_XDECREF(live);
    Py_XDECREF(fin);
    Py_XDECREF(syms);
    Py_XDECREF(book);
    Py_XDECREF(mine);
    Py_XDECREF(o);
    Py_XDECREF(tso);
    Py_XDECREF(ahead);
    Py_XDECREF(seqo);
    Py_XDECREF(ack);
    Py_XDECREF(counters);
    return rc;
}

/* max (bids) or min (asks) of a dict's int keys; 0 when empty, 1 found, -1 error */
static int extreme_key(PyObject *d, int is_max, PyObject **out) {
    Py_ssize_t pos = 0;
    PyObject *k, *v, *best = NULL;
    while (PyDict_Next(d, &pos, &k, &v)) {
        if (best == NULL) best = k;
        else {
            int better = PyObject_RichCompareBool(k, best, is_max ? Py_GT : Py_LT);
            if (better < 0) return -1;
            if (better) best = k;
        }
    }
    *out = best;
    return best != NULL;
}

/* a cancel arriving at ts: 1 done, 0 the Python method's case (nothing changed), -1 error */
static int arrive_cancel(Ctx *x, PyObject *kit, PyObject *a, int64_t ts) {
    int rc = -1;
    PyObject *cid = aget(&A_x_cid, a), *live = NULL, *o = NULL, *sym = NULL, *syms = NULL, *mine = NULL,
             *price = NULL, *fin = NULL, *inflight = NULL, *params = NULL, *tso = NULL, *reason = NULL,
             *rep = NULL, *counters = NULL;
    if (cid == NULL || (live = aget(&A_sim_live, x->sim)) == NULL || (syms = aget(&A_sim_syms, x->sim)) == NULL)
        goto out;
    rc = 0;
    if (!PyDict_CheckExact(live)) goto out;
    PyObject *ob;
    if (dict_get(live, cid, &ob) < 0) {
        rc = -1;
        goto out;
    }
    if (ob == NULL) goto out; /* unknown or finished: the reject */
    o = Py_NewRef(ob);
    int resting = get_truth(&A_o_resting, o);
    if (resting <= 0) {
        rc = resting;
        goto out;
    }
    int64_t sd;
    PyObject *st;
    if ((sym = aget(&A_o_symbol, o)) == NULL || get_i64(&A_o_side, o, &sd) < 0 || dict_get(syms, sym, &st) < 0 ||
        (price = aget(&A_o_price, o)) == NULL) {
        rc = -1;
        goto out;
    }
    if (st == NULL) goto out;
    if ((mine = aget(sd > 0 ? &A_st_bids : &A_st_asks, st)) == NULL) {
        rc = -1;
        goto out;
    }
    PyObject *lst;
    if (!PyDict_CheckExact(mine) || dict_get(mine, price, &lst) < 0 || lst == NULL || !PyList_CheckExact(lst)) {
        rc = PyErr_Occurred() ? -1 : 0;
        goto out;
    }
    Py_ssize_t k = find_same(lst, o);
    if (k < 0) goto out; /* not where _unrest looks: its error, from Python */
    /* from here on: _unrest, _done, the confirmation */
    rc = -1;
    if (aset(&A_o_resting, o, Py_False) < 0 || PyList_SetSlice(lst, k, k + 1, NULL) < 0) goto out;
    if (PyList_GET_SIZE(lst) == 0) {
        if (PyDict_DelItem(mine, price) < 0) goto out;
        Attr *la = sd > 0 ? &A_st_max_bid : &A_st_min_ask;
        PyObject *lim = aget(la, st);
        if (lim == NULL) goto out;
        int eq = PyObject_RichCompareBool(price, lim, Py_EQ);
        Py_DECREF(lim);
        if (eq < 0) goto out;
        if (eq) {
            PyObject *nb;
            int f = extreme_key(mine, sd > 0, &nb);
            if (f < 0 || aset(la, st, f ? nb : PyTuple_GET_ITEM(kit, sd > 0 ? AK_NEG : AK_POS)) < 0) goto out;
        }
    }
    int64_t n;
    if (get_i64(&A_st_n, st, &n) < 0 || set_i64(&A_st_n, st, n - 1) < 0) goto out;
    /* _done: forget the live order, remember its id (OrderedDict, oldest dropped) */
    if (PyDict_DelItem(live, cid) < 0) goto out;
    int64_t keep;
    if ((fin = aget(&A_sim_finished, x->sim)) == NULL || PyObject_SetItem(fin, cid, Py_None) < 0 ||
        (params = aget(&A_sim_params, x->sim)) == NULL || get_i64(&A_sp_retention, params, &keep) < 0)
        goto out;
    Py_ssize_t nf = PyObject_Length(fin);
    if (nf < 0) goto out;
    if (nf > keep) {
        PyObject *r = PyObject_CallMethodObjArgs(fin, M_popitem, Py_False, NULL);
        if (r == NULL) goto out;
        Py_DECREF(r);
    }
    if ((inflight = aget(&A_sim_inflight, x->sim)) == NULL) goto out;
    int infl = PyDict_Contains(inflight, cid);
    if (infl < 0) goto out;
    if (!infl && forget_timing(x, cid) < 0) goto out;
    if ((counters = aget(&A_sim_counters, x->sim)) == NULL || bump(counters, &A_sc_cancels, 1) < 0) goto out;
    /* the confirmation: Canceled(ts, cid, a.reason or "canceled") */
    if ((reason = aget(&A_x_reason, a)) == NULL) goto out;
    int truth = PyObject_IsTrue(reason);
    if (truth < 0) goto out;
    if (!truth) Py_SETREF(reason, Py_NewRef(PyTuple_GET_ITEM(kit, AK_CANCELED_REASON)));
    if ((tso = PyLong_FromLongLong(ts)) == NULL) goto out;
    PyObject *cvals[3] = {tso, cid, reason};
    rep = new_slotted((PyTypeObject *)PyTuple_GET_ITEM(kit, AK_CANCELED_T), CANCELED_SLOTS, cvals, 3);
    if (rep == NULL || sim_emit(x, kit, ts, cid, rep, PyTuple_GET_ITEM(kit, AK_OP_CANCEL)) < 0) goto out;
    rc = 1;
out:
    Py_XDECREF(cid);
    Py_XDECREF(live);
    Py_XDECREF(o);
    Py_XDECREF(sym);
    Py_XDECREF(syms);
    Py_XDECREF(mine);
    Py_XDECREF(price);
    Py_XDECREF(fin);
    Py_XDECREF(inflight);
    Py_XDECREF(params);
    Py_XDECREF(tso);
    Py_XDECREF(reason);
    Py_XDECREF(rep);
    Py_XDECREF(counters);
    return rc;
}

/* FillSimulator.process_arrivals(until) */
static int process_arrivals(Ctx *x, int64_t until) {
    PyObject *kit = x->arrival_kit;
    if (kit == NULL) return call_method(x->sim, M_process_arrivals, NULL, 0, &until, 1);
    for (;;) {
        int64_t t;
        int h = heap_head(x->arrivals, &t);
        if (h <= 0 || t > until) return h < 0 ? -1 : 0;
        PyObject *item = PyObject_CallOneArg(heappop_fn, x->arrivals);
        if (item == NULL) return -1;
        int rc = -1;
        PyObject *action = PyTuple_GET_ITEM(item, 2), *cid = NULL, *counters = NULL, *inflight = NULL;
        int64_t now;
        if (sim_now_get(x, &now) < 0) goto next;
        if (t > now) sim_now_set(x, t);
        if ((counters = aget(&A_sim_counters, x->sim)) == NULL || bump(counters, &A_sc_arrivals, 1) < 0) goto next;
        PyTypeObject *tp = Py_TYPE(action);
        int done = 0;
        if (tp == (PyTypeObject *)PyTuple_GET_ITEM(kit, AK_CREATE_T)) done = arrive_create(x, kit, action, t);
        else if (tp == (PyTypeObject *)PyTuple_GET_ITEM(kit, AK_CANCEL_T)) done = arrive_cancel(x, kit, action, t);
        if (done < 0) goto next;
        if (!done) {
            PyObject *name = tp == (PyTypeObject *)PyTuple_GET_ITEM(kit, AK_CREATE_T)   ? M_on_create
                             : tp == (PyTypeObject *)PyTuple_GET_ITEM(kit, AK_CANCEL_T) ? M_on_cancel
                                                                                         : M_on_amend;
            if (call_method(x->sim, name, &action, 1, &t, 1) < 0) goto next;
        }
        /* the in-flight count of the order; its ordering state goes once nothing is in
           flight and the order is not live */
        if ((cid = PyObject_GetAttr(action, A_a_cid.name)) == NULL || (inflight = aget(&A_sim_inflight, x->sim)) == NULL)
            goto next;
        PyObject *cnt;
        if (dict_get(inflight, cid, &cnt) < 0) goto next;
        if (cnt == NULL) {
            PyErr_SetObject(PyExc_KeyError, cid);
            goto next;
        }
        int64_t left = as_i64(cnt) - 1;
        if (left == -2 && PyErr_Occurred()) goto next;
        if (left) {
            if (set_dict_i64(inflight, cid, left) < 0) goto next;
        } else {
            if (PyDict_DelItem(inflight, cid) < 0) goto next;
            PyObject *live = aget(&A_sim_live, x->sim);
            int in = live == NULL ? -1 : PyDict_Contains(live, cid);
            Py_XDECREF(live);
            if (in < 0) goto next;
            if (!in && forget_timing(x, cid) < 0) goto next;
        }
        rc = 0;
    next:
        Py_XDECREF(cid);
        Py_XDECREF(counters);
        Py_XDECREF(inflight);
        Py_DECREF(item);
        if (rc < 0) return -1;
    }
}

/* ------------------------------------------------------------------ gates */

/* GateChain.check and on_sent with the stock chain (the reconcile kit's gate kit): each
   gate's bound method is looked at once per call; the stock kill switch, circuit breaker
   and throttle answer here in their common state (not tripped; closed; the window has
   room, no backoff, the window exists), everything else is the gate's Python method.  */
ATTR(A_gc_checks, "_checks");
ATTR(A_gc_sents, "_sents");
ATTR(A_ks_tripped, "_tripped");
ATTR(A_cb_state, "_state");
ATTR(A_th_windows, "_windows");
ATTR(A_th_window_ns, "_window_ns");
ATTR(A_th_reasons, "_reasons");
ATTR(A_th_backoff, "_backoff");
ATTR(A_th_ws, "_ws");
ATTR(A_th_last_ns, "_last_ns");
ATTR(A_th_last_sent, "_last_sent");
ATTR(A_bo_ms, "ms");
ATTR(A_ow_stamps, "stamps");
ATTR(A_ow_pos, "pos");
ATTR(A_ow_counts, "counts");
ATTR(A_sr_ring, "ring");
ATTR(A_sr_base, "base_ts");
ATTR(A_sr_idx, "idx");
ATTR(A_sr_size, "size");
ATTR(A_sr_sum, "_sum");

static Attr *GATE_ATTRS[] = {&A_gc_checks, &A_gc_sents, &A_ks_tripped, &A_cb_state, &A_th_windows, &A_th_window_ns,
                             &A_th_reasons, &A_th_backoff, &A_th_ws, &A_th_last_ns, &A_th_last_sent, &A_bo_ms,
                             &A_ow_stamps, &A_ow_pos, &A_ow_counts, &A_sr_ring, &A_sr_base, &A_sr_idx, &A_sr_size,
                             &A_sr_sum, NULL};

enum { GK_CHAIN_T, GK_KS_CHECK, GK_CB_CHECK, GK_CB_SENT, GK_TH_CHECK, GK_TH_SENT, GK_CLOSED, GK_OP_CREATE, GK_OP_CANCEL,
       GK_SIZE };

/* a bound method's function and self (borrowed), or 0 when it is not a bound method */
static int bound(PyObject *m, PyObject **func, PyObject **self) {
    if (!PyMethod_Check(m)) return 0;
    *func = PyMethod_GET_FUNCTION(m);
    *self = PyMethod_GET_SELF(m);
    return 1;
}

static PyObject *call_gate(PyObject *m, PyObject *a, PyObject *nowo) {
    if (clock_sync() < 0) return NULL;
    PyObject *args[2] = {a, nowo};
    return PyObject_Vectorcall(m, args, 2, NULL);
}

/* Throttle's window of (op, sym) (a new reference) or None */
static PyObject *th_window(PyObject *th, PyObject *op, PyObject *sym) {
    PyObject *ws = aget(&A_th_windows, th);
    if (ws == NULL) return NULL;
    PyObject *key = PyTuple_Pack(2, op, sym), *w = NULL;
    if (key != NULL && PyDict_Check(ws)) {
        w = PyDict_GetItemWithError(ws, key);
        if (w == NULL && !PyErr_Occurred()) w = Py_None;
        Py_XINCREF(w);
    } else if (key != NULL) {
        PyErr_SetString(PyExc_TypeError, "Throttle._windows must be a dict");
    }
    Py_XDECREF(key);
    Py_DECREF(ws);
    return w;
}

/* the stock Throttle.check in its common state: 1 answered (*why: a new reference),
   0 the Python method's case, -1 error */
static int th_check(PyObject *th, PyObject *op, PyObject *sym, int64_t now, PyObject **why) {
    PyObject *w = th_window(th, op, sym);
    if (w == NULL) return -1;
    int rc = 1;
    *why = NULL;
    if (w != Py_None) {
        PyObject *stamps = aget(&A_ow_stamps, w);
        int64_t pos, wns, stamp = 0;
        if (stamps == NULL || rd_i64(&A_ow_pos, w, &pos) != 1 || rd_i64(&A_th_window_ns, th, &wns) != 1 ||
            !PyList_CheckExact(stamps) || pos < 0 || pos >= PyList_GET_SIZE(stamps)) {
            rc = PyErr_Occurred() ? -1 : 0;
        } else {
            stamp = as_i64(PyList_GET_ITEM(stamps, pos));
            if (stamp == -1 && PyErr_Occurred()) rc = -1;
            else if (stamp > now - wns) { /* the window is full */
                PyObject *reasons = aget(&A_th_reasons, th);
                if (reasons == NULL) rc = -1;
                else {
                    *why = PyDict_Check(reasons) ? PyDict_GetItemWithError(reasons, op) : NULL;
                    if (*why == NULL) rc = PyErr_Occurred() ? -1 : 0;
                    else Py_INCREF(*why);
                    Py_DECREF(reasons);
                }
            }
        }
        Py_XDECREF(stamps);
    }
    Py_DECREF(w);
    if (rc != 1 || *why != NULL) return rc;
    /* a backoff in force: Python */
    PyObject *bo = aget(&A_th_backoff, th), *ws = bo ? aget(&A_th_ws, th) : NULL;
    int has = bo == NULL ? -1 : PyObject_IsTrue(bo);
    int ms = has == 0 && ws ? get_truth(&A_bo_ms, ws) : has;
    Py_XDECREF(bo);
    Py_XDECREF(ws);
    if (ms != 0) return ms < 0 ? -1 : 0;
    *why = Py_NewRef(Py_None);
    return 1;
}

/* SecondRing.add(now_sec) */
static int ring_add(PyObject *r, int64_t now_sec) {
    int64_t base, idx, size, sum;
    PyObject *ring = aget(&A_sr_ring, r);
    if (ring == NULL) return -1;
    int rc = -1;
    if (get_i64(&A_sr_base, r, &base) < 0 || get_i64(&A_sr_idx, r, &idx) < 0 || get_i64(&A_sr_size, r, &size) < 0 ||
        get_i64(&A_sr_sum, r, &sum) < 0)
        goto out;
    if (!PyList_CheckExact(ring) || PyList_GET_SIZE(ring) != size || size < 1) {
        PyErr_SetString(PyExc_TypeError, "SecondRing.ring must be a list of size ints");
        goto out;
    }
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) goto out;
    int64_t head = base + idx;
    if (now_sec > head) { /* _advance */
        int64_t gap = now_sec - head;
        if (gap >= size) {
            for (int64_t i = 0; i < size; i++) {
                Py_INCREF(zero);
                PyObject *old = PyList_GET_ITEM(ring, i);
                PyList_SET_ITEM(ring, i, zero);
                Py_DECREF(old);
            }
            sum = 0;
            idx = 0;
        } else {
            for (int64_t g = 0; g < gap; g++) {
                if (++idx == size) idx = 0;
                PyObject *old = PyList_GET_ITEM(ring, idx);
                int64_t v = as_i64(old);
                if (v == -1 && PyErr_Occurred()) {
                    Py_DECREF(zero);
                    goto out;
                }
                sum -= v;
                Py_INCREF(zero);
                PyList_SET_ITEM(ring, idx, zero);
                Py_DECREF(old);
            }
        }
        base = now_sec - idx;
    }
    Py_DECREF(zero);
    int64_t k = base + idx - now_sec;
    if (k < size) {
        int64_t slot = ((idx - k) % size + size) % size;
        int64_t v = as_i64(PyList_GET_ITEM(ring, slot));
        if (v == -1 && PyErr_Occurred()) goto out;
        PyObject *nv = PyLong_FromLongLong(v + 1);
        if (nv == NULL) goto out;
        PyObject *old = PyList_GET_ITEM(ring, slot);
        PyList_SET_ITEM(ring, slot, nv);
        Py_DECREF(old);
        sum += 1;
    }
    rc = set_i64(&A_sr_idx, r, idx) < 0 || set_i64(&A_sr_base, r, base) < 0 || set_i64(&A_sr_sum, r, sum) < 0 ? -1 : 0;
out:
    Py_DECREF(ring);
    return rc;
}

/* the stock Throttle.on_sent when the window exists: 1 done, 0 the Python method, -1 error */
static int th_sent(PyObject *th, PyObject *op, PyObject *sym, int is_cancel, int64_t now) {
    int64_t last;
    if (get_i64(&A_th_last_ns, th, &last) < 0) return -1;
    PyObject *w = th_window(th, op, sym);
    if (w == NULL) return -1;
    if (w == Py_None) {
        Py_DECREF(w);
        return 0;
    }
    int rc = -1;
    PyObject *counts = NULL, *stamps = NULL;
    int64_t pos;
    if ((counts = aget(&A_ow_counts, w)) == NULL || (stamps = aget(&A_ow_stamps, w)) == NULL ||
        get_i64(&A_ow_pos, w, &pos) < 0)
        goto out;
    if (!PyList_CheckExact(stamps) || pos < 0 || pos >= PyList_GET_SIZE(stamps)) {
        rc = 0;
        goto out;
    }
    if (now < last) now = last;
    else if (set_i64(&A_th_last_ns, th, now) < 0) goto out;
    if (ring_add(counts, floor_div(now, 1000000000)) < 0) goto out;
    PyObject *t = PyLong_FromLongLong(now);
    if (t == NULL) goto out;
    PyObject *old = PyList_GET_ITEM(stamps, pos);
    PyList_SET_ITEM(stamps, pos, t);
    Py_DECREF(old);
    if (++pos == PyList_GET_SIZE(stamps)) pos = 0;
    if (set_i64(&A_ow_pos, w, pos) < 0) goto out;
    if (!is_cancel) {
        PyObject *ls = aget(&A_th_last_sent, th);
        int r = ls == NULL ? -1 : set_dict_i64(ls, sym, now);
        Py_XDECREF(ls);
        if (r < 0) goto out;
    }
    rc = 1;
out:
    Py_DECREF(w);
    Py_XDECREF(counts);
    Py_XDECREF(stamps);
    return rc;
}

/* GateChain.check(a, now) of the stock chain: a new reference to the reason or None */
static PyObject *chain_check(PyObject *gk, PyObject *chain, PyObject *a, PyObject *sym, int is_cancel, int64_t now,
                             PyObject *nowo) {
    if (is_cancel) return Py_NewRef(Py_None);
    PyObject *checks = aget(&A_gc_checks, chain);
    if (checks == NULL) return NULL;
    if (!PyTuple_CheckExact(checks)) {
        Py_DECREF(checks);
        PyErr_SetString(PyExc_TypeError, "GateChain._checks must be a tuple");
        return NULL;
    }
    PyObject *op = PyTuple_GET_ITEM(gk, GK_OP_CREATE), *why = NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(checks); i++) {
        PyObject *m = PyTuple_GET_ITEM(checks, i), *f, *self;
        int r = 0;
        if (bound(m, &f, &self)) {
            if (f == PyTuple_GET_ITEM(gk, GK_KS_CHECK)) {
                int t = get_truth(&A_ks_tripped, self);
                r = t < 0 ? -1 : !t;
            } else if (f == PyTuple_GET_ITEM(gk, GK_CB_CHECK)) {
                PyObject *st = aget(&A_cb_state, self);
                r = st == NULL ? -1 : same_str(st, PyTuple_GET_ITEM(gk, GK_CLOSED));
                Py_XDECREF(st);
            } else if (f == PyTuple_GET_ITEM(gk, GK_TH_CHECK)) {
                r = th_check(self, op, sym, now, &why);
                if (r == 1 && why != Py_None) break;
                Py_XDECREF(why);
                why = NULL;
            }
        }
        if (r < 0) break;
        if (r == 1) continue; /* the gate lets it pass */
        why = call_gate(m, a, nowo);
        if (why == NULL || why != Py_None) break;
        Py_DECREF(why);
        why = NULL;
    }
    Py_DECREF(checks);
    if (why == NULL && !PyErr_Occurred()) why = Py_NewRef(Py_None);
    return why;
}

/* GateChain.on_sent(a, now) of the stock chain */
static int chain_sent(PyObject *gk, PyObject *chain, PyObject *a, PyObject *sym, int is_cancel, int64_t now,
                      PyObject *nowo) {
    PyObject *sents = aget(&A_gc_sents, chain);
    if (sents == NULL) return -1;
    if (!PyTuple_CheckExact(sents)) {
        Py_DECREF(sents);
        PyErr_SetString(PyExc_TypeError, "GateChain._sents must be a tuple");
        return -1;
    }
    PyObject *op = PyTuple_GET_ITEM(gk, is_cancel ? GK_OP_CANCEL : GK_OP_CREATE);
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PyTuple_GET_SIZE(sents); i++) {
        PyObject *m = PyTuple_GET_ITEM(sents, i), *f, *self;
        int r = 0;
        if (bound(m, &f, &self)) {
            if (f == PyTuple_GET_ITEM(gk, GK_CB_SENT)) { /* counts half-open probes: nothing when closed */
                PyObject *st = is_cancel ? NULL : aget(&A_cb_state, self);
                r = is_cancel ? 1 : st == NULL ? -1 : same_str(st, PyTuple_GET_ITEM(gk, GK_CLOSED));
                Py_XDECREF(st);
            } else if (f == PyTuple_GET_ITEM(gk, GK_TH_SENT)) {
                r = th_sent(self, op, sym, is_cancel, now);
            }
        }
        if (r < 0) rc = -1;
        else if (r == 0) {
            PyObject *res = call_gate(m, a, nowo);
            if (res == NULL) rc = -1;
            Py_XDECREF(res);
        }
    }
    Py_DECREF(sents);
    return rc;
}

/* ------------------------------------------------------------------ reconcile */

/* OrderManager._reconcile_slow(desired, now, mid) for the cancel_replace policy with the
   stock order manager methods (ctx's reconcile kit), when nothing is due for the pending
   timeouts, the tail batch is off, each side's desired ladder is clean (levels rising
   under the cap, prices moving away from the mid, positive sizes, this manager's symbol)
   and the budget still covers the resting orders: the same plan (exact price matches
   keep resting, the rest pair up nearest the mid first, surplus orders are pulled), the
   same creates and replacements in level order, the gates asked through their Python
   methods.  Anything else goes to _reconcile_slow; the checks come before the first
   change.  1 = done (*out: the actions, a new list), 0 = not covered, -1 = error. */
ATTR(A_om_deadline, "_deadline_ns");
ATTR(A_om_tail_age, "_tail_age_ns");
ATTR(A_om_gate, "_gate");
ATTR(A_om_id_base, "_id_base");
ATTR(A_om_seq, "_seq");
ATTR(A_om_timeout, "_timeout_ns");
ATTR(A_om_last_replace, "_last_replace_ns");
ATTR(A_om_min_interval, "_min_interval_ns");
ATTR(A_op_max_conc, "replace_max_concurrent");
ATTR(A_op_post_only, "post_only");
ATTR(A_oc_level_capped, "level_capped");
ATTR(A_oc_budget_capped, "budget_capped");
ATTR(A_oc_gated, "gated");
ATTR(A_oc_created, "created");
ATTR(A_oc_throttled, "replace_throttled");
ATTR(A_oc_stale_cancels, "stale_cancels");
ATTR(A_oc_replaces, "replaces");
ATTR(A_oc_canceled, "canceled");
ATTR(A_oc_cancels, "cancels");
ATTR(A_lo_pending_ref_mid, "pending_ref_mid");
ATTR(A_lo_cid, "client_id");
ATTR(A_lo_sent, "sent_ns");
ATTR(A_lo_cancel_rejected, "cancel_rejected");
ATTR(A_lv_cid, "client_id");
ATTR(A_lv_symbol, "symbol");
ATTR(A_lv_side, "side");
ATTR(A_lv_price, "price");
ATTR(A_lv_qty, "qty");
ATTR(A_lv_level, "level");
ATTR(A_lv_created, "created_ns");
ATTR(A_lv_state, "state");
ATTR(A_lv_filled, "filled");
ATTR(A_lv_updated, "updated_ns");
ATTR(A_lv_placed, "placed_ns");
ATTR(A_lv_venue_id, "venue_id");
ATTR(A_lv_post_only, "post_only");
ATTR(A_lv_pending_price, "pending_price");
ATTR(A_lv_pending_qty, "pending_qty");
ATTR(A_lv_side_idx, "side_idx");
ATTR(A_lv_attached, "attached");
ATTR(A_lv_acked, "acked");
ATTR(A_lv_priced, "priced_ns");
ATTR(A_lv_sent, "sent_ns");
ATTR(A_lv_ref_mid, "ref_mid");
ATTR(A_lv_pending_ref_mid, "pending_ref_mid");
ATTR(A_lv_committed, "committed");
ATTR(A_lv_fill_units, "fill_units");
ATTR(A_lv_fill_lots, "fill_lots");
ATTR(A_lv_fill_keys, "fill_keys");
ATTR(A_lv_cancel_retries, "cancel_retries");
ATTR(A_lv_cancel_rejected, "cancel_rejected");
ATTR(A_co_cid, "client_id");
ATTR(A_co_symbol, "symbol");
ATTR(A_co_side, "side");
ATTR(A_co_price, "price");
ATTR(A_co_qty, "qty");
ATTR(A_co_post_only, "post_only");
ATTR(A_co_level, "level");
ATTR(A_cx_cid, "client_id");
ATTR(A_cx_symbol, "symbol");
ATTR(A_cx_reason, "reason");

static Attr *LIVE_SLOTS[] = {&A_lv_cid, &A_lv_symbol, &A_lv_side, &A_lv_price, &A_lv_qty, &A_lv_level, &A_lv_created,
                             &A_lv_state, &A_lv_filled, &A_lv_updated, &A_lv_placed, &A_lv_venue_id, &A_lv_post_only,
                             &A_lv_pending_price, &A_lv_pending_qty, &A_lv_side_idx, &A_lv_attached, &A_lv_acked,
                             &A_lv_priced, &A_lv_sent, &A_lv_ref_mid, &A_lv_pending_ref_mid, &A_lv_committed,
                             &A_lv_fill_units, &A_lv_fill_lots, &A_lv_fill_keys, &A_lv_cancel_retries,
                             &A_lv_cancel_rejected};
#define N_LIVE_SLOTS 28
static Attr *CREATE_SLOTS[] = {&A_co_cid, &A_co_symbol, &A_co_side, &A_co_price, &A_co_qty, &A_co_post_only,
                               &A_co_level};
static Attr *CANCEL_SLOTS[] = {&A_cx_cid, &A_cx_symbol, &A_cx_reason};

static Attr *RECONCILE_ATTRS[] = {
    &A_om_deadline, &A_om_tail_age, &A_om_gate, &A_om_id_base, &A_om_seq, &A_om_timeout, &A_om_last_replace,
    &A_om_min_interval, &A_op_max_conc, &A_op_post_only, &A_oc_level_capped, &A_oc_budget_capped, &A_oc_gated,
    &A_oc_created, &A_oc_throttled, &A_oc_stale_cancels, &A_oc_replaces, &A_oc_canceled, &A_oc_cancels,
    &A_lo_pending_ref_mid, &A_lo_cid, &A_lo_sent, &A_lo_cancel_rejected, &A_lv_cid, &A_lv_symbol, &A_lv_side,
    &A_lv_price, &A_lv_qty, &A_lv_level, &A_lv_created, &A_lv_state, &A_lv_filled, &A_lv_updated, &A_lv_placed,
    &A_lv_venue_id, &A_lv_post_only, &A_lv_pending_price, &A_lv_pending_qty, &A_lv_side_idx, &A_lv_attached,
    &A_lv_acked, &A_lv_priced, &A_lv_sent, &A_lv_ref_mid, &A_lv_pending_ref_mid, &A_lv_committed, &A_lv_fill_units,
    &A_lv_fill_lots, &A_lv_fill_keys, &A_lv_cancel_retries, &A_lv_cancel_rejected, &A_co_cid, &A_co_symbol,
    &A_co_side, &A_co_price, &A_co_qty, &A_co_post_only, &A_co_level, &A_cx_cid, &A_cx_symbol, &A_cx_reason, NULL};

enum { RK_LIVE_T, RK_CREATE_T, RK_CANCEL_T, RK_PENDING_NEW, RK_PENDING_CANCEL, RK_PULLED, RK_REPLACE, RK_STALE_TTL,
       RK_STALE_DRIFT, RK_TTL, RK_DRIFT, RK_FLOW_PREFIXES, RK_EMPTY, RK_ZERO_F, RK_GATES, RK_SIZE };

static PyObject *M_check, *M_on_sent;

#define MAX_SIDE_ORDERS 32

typedef struct { /* a live, attached order as the plan reads it */
    PyObject *o; /* a new reference */
    int64_t price, key_price, qty, filled, priced, level;
    int resting;
} Rd;

typedef struct {
    int64_t level;
    int si, want;  /* index into the wants */
    int ord;       /* index into that side's Rd, -1 = a create */
    PyObject *stale; /* borrowed kit string ("ttl"/"drift") or NULL */
} Intent;

typedef struct {
    Ctx *x;
    PyObject *kit, *om, *counters, *gate, *sym, *id_base, *att[2], *tot, *det, *orders, *live, *replacing;
    PyObject *cancels, *out, *nowo, *mido, *post_only;
    int64_t now, timeout, deadline, max_levels, cap_i, max_conc, min_interval;
    PyObject *cap;
    int inverse;
} Rc;

/* d[key] += 1 for a counter dict */
static int bump_key(PyObject *d, PyObject *key) {
    if (!PyDict_Check(d)) {
        PyErr_SetString(PyExc_TypeError, "counter maps must be dicts");
        return -1;
    }
    PyObject *cur = PyDict_GetItemWithError(d, key);
    if (cur == NULL && PyErr_Occurred()) return -1;
    PyObject *one = PyLong_FromLong(1); /* a cached small int */
    if (one == NULL) return -1;
    PyObject *v = cur ? PyNumber_Add(cur, one) : Py_NewRef(one);
    Py_DECREF(one);
    if (v == NULL) return -1;
    int rc = PyDict_SetItem(d, key, v);
    Py_DECREF(v);
    return rc;
}

static int bump_map(PyObject *counters, Attr *a, PyObject *key) {
    PyObject *d = aget(a, counters);
    if (d == NULL) return -1;
    int rc = bump_key(d, key);
    Py_DECREF(d);
    return rc;
}

/* gate.check(action, now): a new reference to the reason or None */
static PyObject *gate_check(Rc *c, PyObject *a) {
    PyObject *gk = PyTuple_GET_ITEM(c->kit, RK_GATES);
    if (gk != Py_None && Py_TYPE(c->gate) == (PyTypeObject *)PyTuple_GET_ITEM(gk, GK_CHAIN_T))
        return chain_check(gk, c->gate, a, c->sym, 0, c->now, c->nowo);
    if (clock_sync() < 0) return NULL;
    PyObject *args[3] = {c->gate, a, c->nowo};
    return PyObject_VectorcallMethod(M_check, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static int gate_sent(Rc *c, PyObject *a, int is_cancel) {
    PyObject *gk = PyTuple_GET_ITEM(c->kit, RK_GATES);
    if (gk != Py_None && Py_TYPE(c->gate) == (PyTypeObject *)PyTuple_GET_ITEM(gk, GK_CHAIN_T))
        return chain_sent(gk, c->gate, a, c->sym, is_cancel, c->now, c->nowo);
    if (clock_sync() < 0) return -1;
    PyObject *args[3] = {c->gate, a, c->nowo};
    PyObject *r = PyObject_VectorcallMethod(M_on_sent, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

static int set_deadline(Rc *c) {
    int64_t due = c->now + c->timeout;
    if (due < c->deadline) {
        c->deadline = due;
        return set_i64(&A_om_deadline, c->om, due);
    }
    return 0;
}

/* OrderManager._send_cancel(o, reason, now, out) */
static int rc_send_cancel(Rc *c, PyObject *o, PyObject *reason, PyObject *out) {
    PyObject *cid = aget(&A_lo_cid, o);
    if (cid == NULL) return -1;
    PyObject *vals[3] = {cid, c->sym, reason};
    PyObject *a = new_slotted((PyTypeObject *)PyTuple_GET_ITEM(c->kit, RK_CANCEL_T), CANCEL_SLOTS, vals, 3);
    Py_DECREF(cid);
    if (a == NULL) return -1;
    int rc = -1;
    if (c->gate != Py_None && gate_sent(c, a, 1) < 0) goto out;
    int attached = get_truth(&A_lv_attached, o);
    if (attached < 0) goto out;
    if (attached) { /* _detach */
        int64_t si, nd;
        if (get_i64(&A_lv_side_idx, o, &si) < 0 || aset(&A_lv_attached, o, Py_False) < 0) goto out;
        PyObject *lst = si >= 0 && si < 2 ? c->att[si] : NULL;
        if (lst == NULL) {
            PyErr_SetString(PyExc_ValueError, "side_idx must be 0 or 1");
            goto out;
        }
        PyObject *committed = aget(&A_lv_committed, o);
        int bad = committed == NULL || remove_same(lst, o) < 0 || list_add(c->det, si, committed, 0) < 0 ||
                  get_i64(&A_om_detached, c->om, &nd) < 0 || set_i64(&A_om_detached, c->om, nd + 1) < 0;
        Py_XDECREF(committed);
        if (bad) goto out;
    }
    if (aset(&A_lv_state, o, PyTuple_GET_ITEM(c->kit, RK_PENDING_CANCEL)) < 0 || aset(&A_lv_sent, o, c->nowo) < 0 ||
        aset(&A_lv_updated, o, c->nowo) < 0 || aset(&A_lv_cancel_rejected, o, Py_False) < 0 || set_deadline(c) < 0 ||
        bump(c->counters, &A_oc_canceled, 1) < 0 || bump_map(c->counters, &A_oc_cancels, reason) < 0 ||
        PyList_Append(out, a) < 0)
        goto out;
    rc = 0;
out:
    Py_DECREF(a);
    return rc;
}

static PyObject *next_id(Rc *c, int64_t *seq) {
    if (get_i64(&A_om_seq, c->om, seq) < 0) return NULL;
    return PyUnicode_FromFormat("%U%lld", c->id_base, (long long)*seq);
}

/* q as Python ints: side, price, qty, level (new references in v[0..3]) */
static int want_ints(const Want *q, PyObject **v) {
    int64_t src[4] = {q->side, q->price, q->qty, q->level};
    for (int i = 0; i < 4; i++) {
        if ((v[i] = PyLong_FromLongLong(src[i])) == NULL) {
            for (int j = 0; j < i; j++) Py_DECREF(v[j]);
            return -1;
        }
    }
    return 0;
}

static PyObject *make_create(Rc *c, PyObject *cid, PyObject **qv) {
    PyObject *vals[7] = {cid, c->sym, qv[0], qv[1], qv[2], c->post_only, qv[3]};
    return new_slotted((PyTypeObject *)PyTuple_GET_ITEM(c->kit, RK_CREATE_T), CREATE_SLOTS, vals, 7);
}

/* q's budget units: qty lots (inverse) or price x qty; 0 when beyond 64 bits */
static int units_of(Rc *c, const Want *q, int64_t *u) {
    if (c->inverse) {
        *u = q->qty;
        return 1;
    }
    return !__builtin_mul_overflow(q->price, q->qty, u);
}

/* cap is None, or tot[si] + units <= cap */
static int fits_cap(Rc *c, int si, int64_t units) {
    if (c->cap == Py_None) return 1;
    PyObject *u = PyLong_FromLongLong(units);
    PyObject *sum = u ? PyNumber_Add(PyList_GET_ITEM(c->tot, si), u) : NULL;
    Py_XDECREF(u);
    if (sum == NULL) return -1;
    int r = PyObject_RichCompareBool(sum, c->cap, Py_LE);
    Py_DECREF(sum);
    return r;
}

/* OrderManager._try_create(q, si, now, mid, out): 1 created (*cid_out: a new reference),
   0 not, -1 error */
static int rc_try_create(Rc *c, const Want *q, int si, PyObject **cid_out) {
    *cid_out = NULL;
    if (PyList_GET_SIZE(c->att[si]) >= c->max_levels) return bump(c->counters, &A_oc_level_capped, 1) < 0 ? -1 : 0;
    int64_t units, seq;
    if (!units_of(c, q, &units)) {
        PyErr_SetString(PyExc_OverflowError, "order units beyond 64 bits");
        return -1;
    }
    int fits = fits_cap(c, si, units);
    if (fits <= 0) return fits < 0 || bump(c->counters, &A_oc_budget_capped, 1) < 0 ? -1 : 0;
    PyObject *qv[4];
    if (want_ints(q, qv) < 0) return -1;
    PyObject *cid = next_id(c, &seq), *a = NULL, *why = NULL, *o = NULL, *uo = NULL, *zero = NULL, *sio = NULL;
    int rc = -1;
    if (cid == NULL || (a = make_create(c, cid, qv)) == NULL) goto out;
    if (c->gate != Py_None) {
        if ((why = gate_check(c, a)) == NULL) goto out;
        if (why != Py_None) {
            rc = bump_map(c->counters, &A_oc_gated, why) < 0 ? -1 : 0;
            goto out;
        }
        if (gate_sent(c, a, 0) < 0) goto out;
    }
    if (set_i64(&A_om_seq, c->om, seq + 1) < 0 || (uo = PyLong_FromLongLong(units)) == NULL ||
        (zero = PyLong_FromLong(0)) == NULL || (sio = PyLong_FromLong(si)) == NULL)
        goto out;
    {
        PyObject *k = c->kit;
        PyObject *vals[N_LIVE_SLOTS] = {
            cid, c->sym, qv[0], qv[1], qv[2], qv[3], c->nowo, PyTuple_GET_ITEM(k, RK_PENDING_NEW), zero, c->nowo, zero,
            PyTuple_GET_ITEM(k, RK_EMPTY), c->post_only, zero, zero, sio, Py_True, Py_False, zero, c->nowo, c->mido,
            PyTuple_GET_ITEM(k, RK_ZERO_F), uo, zero, zero, Py_None, zero, Py_False};
        o = new_slotted((PyTypeObject *)PyTuple_GET_ITEM(k, RK_LIVE_T), LIVE_SLOTS, vals, N_LIVE_SLOTS);
    }
    if (o == NULL || PyDict_SetItem(c->orders, cid, o) < 0 || PyDict_SetItem(c->live, cid, o) < 0 ||
        PyList_Append(c->att[si], o) < 0 || list_add(c->tot, si, uo, 0) < 0 || set_deadline(c) < 0 ||
        bump(c->counters, &A_oc_created, 1) < 0 || PyList_Append(c->out, a) < 0)
        goto out;
    *cid_out = Py_NewRef(cid);
    rc = 1;
out:
    for (int i = 0; i < 4; i++) Py_DECREF(qv[i]);
    Py_XDECREF(cid);
    Py_XDECREF(a);
    Py_XDECREF(why);
    Py_XDECREF(o);
    Py_XDECREF(uo);
    Py_XDECREF(zero);
    Py_XDECREF(sio);
    return rc;
}

/* OrderManager._blocked_replace(o, stale, why, now, cancels) */
static int rc_blocked(Rc *c, PyObject *o, PyObject *stale, PyObject *why) {
    if (bump_map(c->counters, &A_oc_gated, why) < 0) return -1;
    if (stale != NULL) {
        if (bump_map(c->counters, &A_oc_stale_cancels, stale) < 0) return -1;
        PyObject *reason = PyTuple_GET_ITEM(c->kit, same_str(stale, PyTuple_GET_ITEM(c->kit, RK_TTL)) ? RK_STALE_TTL
                                                                                                     : RK_STALE_DRIFT);
        return rc_send_cancel(c, o, reason, c->cancels);
    }
    PyObject *prefixes = PyTuple_GET_ITEM(c->kit, RK_FLOW_PREFIXES);
    int flow = 0;
    if (!PyUnicode_Check(why)) {
        PyErr_SetString(PyExc_TypeError, "a gate's reason must be a str");
        return -1;
    }
    for (Py_ssize_t i = 0; !flow && i < PyTuple_GET_SIZE(prefixes); i++) {
        Py_ssize_t m = PyUnicode_Tailmatch(why, PyTuple_GET_ITEM(prefixes, i), 0, PY_SSIZE_T_MAX, -1);
        if (m < 0) return -1;
        flow = (int)m;
    }
    return flow ? 0 : rc_send_cancel(c, o, why, c->cancels);
}

/* OrderManager._try_replace(q, o, si, stale, now, mid, cancels, out), cancel_replace */
static int rc_try_replace(Rc *c, const Want *q, PyObject *o, int si, PyObject *stale) {
    int64_t last, nrep;
    if (get_i64(&A_om_last_replace, c->om, &last) < 0) return -1;
    Py_ssize_t busy = PySet_Size(c->replacing);
    if (busy < 0) return -1;
    int64_t since;
    if (__builtin_sub_overflow(c->now, last, &since)) since = INT64_MAX; /* _NEVER: long ago */
    if (busy >= c->max_conc || since < c->min_interval) return bump(c->counters, &A_oc_throttled, 1);
    int64_t units;
    if (!units_of(c, q, &units)) {
        PyErr_SetString(PyExc_OverflowError, "order units beyond 64 bits");
        return -1;
    }
    int fits = fits_cap(c, si, units);
    if (fits < 0) return -1;
    if (fits && c->gate != Py_None) {
        PyObject *qv[4];
        if (want_ints(q, qv) < 0) return -1;
        int64_t seq;
        PyObject *cid = next_id(c, &seq), *probe = cid ? make_create(c, cid, qv) : NULL;
        PyObject *why = probe ? gate_check(c, probe) : NULL;
        for (int i = 0; i < 4; i++) Py_DECREF(qv[i]);
        Py_XDECREF(cid);
        Py_XDECREF(probe);
        if (why == NULL) return -1;
        if (why != Py_None) {
            int r = rc_blocked(c, o, stale, why);
            Py_DECREF(why);
            return r;
        }
        Py_DECREF(why);
    }
    if (stale != NULL && bump_map(c->counters, &A_oc_stale_cancels, stale) < 0) return -1;
    PyObject *reason = PyTuple_GET_ITEM(
        c->kit, stale == NULL ? RK_REPLACE : same_str(stale, PyTuple_GET_ITEM(c->kit, RK_TTL)) ? RK_STALE_TTL : RK_STALE_DRIFT);
    if (rc_send_cancel(c, o, reason, c->cancels) < 0 || set_i64(&A_om_last_replace, c->om, c->now) < 0 ||
        get_i64(&A_oc_replaces, c->counters, &nrep) < 0 || set_i64(&A_oc_replaces, c->counters, nrep + 1) < 0)
        return -1;
    PyObject *new_id = NULL;
    if (fits && rc_try_create(c, q, si, &new_id) < 0) return -1;
    int r;
    if (new_id != NULL) {
        r = PySet_Add(c->replacing, new_id);
        Py_DECREF(new_id);
    } else {
        if (!fits && bump(c->counters, &A_oc_budget_capped, 1) < 0) return -1;
        PyObject *cid = aget(&A_lo_cid, o);
        r = cid == NULL ? -1 : PySet_Add(c->replacing, cid);
        Py_XDECREF(cid);
    }
    return r;
}

/* a <= b for two ints of a list (the per-side sums) and the cap: tot[si] - det[si] > cap */
static int over_cap(PyObject *tot, PyObject *det, int si, PyObject *cap) {
    PyObject *d = PyNumber_Subtract(PyList_GET_ITEM(tot, si), PyList_GET_ITEM(det, si));
    if (d == NULL) return -1;
    int r = PyObject_RichCompareBool(d, cap, Py_GT);
    Py_DECREF(d);
    return r;
}

static int reconcile_c(Ctx *x, PyObject *om, const Want *w, Py_ssize_t nw, int64_t now, int64_t mid,
                       PyObject **actions) {
    PyObject *kit = x->reconcile_kit;
    *actions = NULL;
    if (kit == NULL || nw > MAX_WANTS) return 0;
    Rc c;
    memset(&c, 0, sizeof c);
    c.x = x, c.kit = kit, c.om = om, c.now = now;
    Rd rd[2][MAX_SIDE_ORDERS];
    Py_ssize_t nrd[2] = {0, 0};
    PyObject *attt = NULL, *params = NULL;
    int rc = 0, r;
    int64_t tail_age, ttl = FOREVER, min_tib;
    double drift = 0.0, thr;
    /* ---- reads and checks: nothing changes before the plan is known to be covered */
    int amend = get_truth(&A_om_amend, om);
    if (amend != 0) return amend < 0 ? -1 : 0;
    if ((r = rd_i64(&A_om_deadline, om, &c.deadline)) != 1 || (r = rd_i64(&A_om_tail_age, om, &tail_age)) != 1 ||
        (r = rd_i64(&A_om_max_levels, om, &c.max_levels)) != 1 || (r = rd_i64(&A_om_min_tib, om, &min_tib)) != 1 ||
        (r = rd_i64(&A_om_timeout, om, &c.timeout)) != 1 || (r = rd_i64(&A_om_min_interval, om, &c.min_interval)) != 1)
        return r < 0 ? -1 : 0;
    if (now >= c.deadline || tail_age < FOREVER) return 0; /* pending timeouts due, or the tail batch on */
    int guard = get_truth(&A_om_guard, om);
    if (guard < 0) return -1;
    if (guard && ((r = rd_i64(&A_om_ttl, om, &ttl)) != 1 || (r = rd_f64(&A_om_drift, om, &drift)) != 1))
        return r < 0 ? -1 : 0;
    if ((r = rd_f64(&A_om_thr, om, &thr)) != 1) return r < 0 ? -1 : 0;
    if ((c.inverse = get_truth(&A_om_inverse, om)) < 0) return -1;
    if ((attt = aget(&A_om_att, om)) == NULL || (c.sym = aget(&A_om_symbol, om)) == NULL ||
        (c.cap = aget(&A_om_cap, om)) == NULL || (c.tot = aget(&A_om_tot, om)) == NULL ||
        (c.det = aget(&A_om_det, om)) == NULL || (c.gate = aget(&A_om_gate, om)) == NULL ||
        (c.id_base = aget(&A_om_id_base, om)) == NULL || (c.orders = aget(&A_om_orders, om)) == NULL ||
        (c.live = aget(&A_om_live, om)) == NULL || (c.replacing = aget(&A_om_replacing, om)) == NULL ||
        (c.counters = aget(&A_om_counters, om)) == NULL || (params = aget(&A_om_params, om)) == NULL ||
        (c.post_only = aget(&A_op_post_only, params)) == NULL)
        goto error;
    if ((r = rd_i64(&A_op_max_conc, params, &c.max_conc)) != 1) goto read_fail;
    if (!PyTuple_CheckExact(attt) || PyTuple_GET_SIZE(attt) != 2 || !PyList_CheckExact(PyTuple_GET_ITEM(attt, 0)) ||
        !PyList_CheckExact(PyTuple_GET_ITEM(attt, 1)) || !PyList_CheckExact(c.tot) || PyList_GET_SIZE(c.tot) != 2 ||
        !PyList_CheckExact(c.det) || PyList_GET_SIZE(c.det) != 2 || !PyUnicode_Check(c.id_base) ||
        !PyDict_Check(c.orders) || !PyDict_Check(c.live) || !PySet_Check(c.replacing) ||
        (c.cap != Py_None && !PyLong_Check(c.cap)))
        goto unsure;
    c.att[0] = PyTuple_GET_ITEM(attt, 0), c.att[1] = PyTuple_GET_ITEM(attt, 1);
    /* the desired ladder per side: clean, this symbol, units within 64 bits */
    int wi[2][MAX_WANTS];
    Py_ssize_t nq[2] = {0, 0};
    for (Py_ssize_t i = 0; i < nw; i++) {
        const Want *q = &w[i];
        int64_t u;
        if ((q->side != 1 && q->side != -1) || !same_str(q->symbol, c.sym) || !units_of(&c, q, &u)) goto unsure;
        int s = q->side == BUY ? 0 : 1;
        if (nq[s]) {
            const Want *p = &w[wi[s][nq[s] - 1]];
            if (q->level <= p->level || (s == 0 ? q->price >= p->price : q->price <= p->price)) goto unsure;
        }
        if (q->level < 0 || q->level >= c.max_levels || q->qty <= 0 || q->price <= 0) goto unsure;
        wi[s][nq[s]++] = (int)i;
    }
    for (int s = 0; s < 2; s++) {
        PyObject *lst = c.att[s];
        if (c.cap != Py_None && PyList_GET_SIZE(lst)) {
            int over = over_cap(c.tot, c.det, s, c.cap);
            if (over != 0) goto maybe_error;
        }
        if (PyList_GET_SIZE(lst) > MAX_SIDE_ORDERS) goto unsure;
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(lst); k++) {
            Rd *d = &rd[s][nrd[s]];
            d->o = Py_NewRef(PyList_GET_ITEM(lst, k));
            nrd[s]++;
            int64_t pq, pp;
            if ((r = rd_i64(&A_lo_price, d->o, &d->price)) != 1 || (r = rd_i64(&A_lv_pending_qty, d->o, &pq)) != 1 ||
                (r = rd_i64(&A_lv_pending_price, d->o, &pp)) != 1 || (r = rd_i64(&A_lo_qty, d->o, &d->qty)) != 1 ||
                (r = rd_i64(&A_lo_filled, d->o, &d->filled)) != 1 || (r = rd_i64(&A_lo_priced, d->o, &d->priced)) != 1)
                goto read_fail;
            d->key_price = pq ? pp : d->price;
            PyObject *st = aget(&A_lo_state, d->o);
            if (st == NULL) goto error;
            d->resting = same_str(st, x->st_open) || same_str(st, x->st_partial);
            Py_DECREF(st);
            if (d->price > EXACT_DBL || d->price < -EXACT_DBL) goto unsure;
        }
    }
    /* ---- the plan (still nothing changed) */
    Intent in[2 * MAX_WANTS];
    int nin = 0;
    int set_o[2][MAX_WANTS], set_w[2][MAX_WANTS], nset[2] = {0, 0}; /* kept: order -> level */
    int surplus[2][MAX_SIDE_ORDERS], nsur[2] = {0, 0};
    for (int s = 0; s < 2; s++) {
        int free_[MAX_SIDE_ORDERS], nfree = 0, unm[MAX_WANTS], nunm = 0;
        for (Py_ssize_t k = 0; k < nrd[s]; k++) free_[nfree++] = (int)k;
        for (Py_ssize_t j = 0; j < nq[s]; j++) { /* 1. exact price matches */
            const Want *q = &w[wi[s][j]];
            int hit = -1;
            for (int f = 0; f < nfree; f++)
                if (rd[s][free_[f]].key_price == q->price) {
                    hit = f;
                    break;
                }
            if (hit < 0) {
                unm[nunm++] = wi[s][j];
                continue;
            }
            int oi = free_[hit];
            memmove(&free_[hit], &free_[hit + 1], sizeof(int) * (size_t)(nfree - hit - 1));
            nfree--;
            set_o[s][nset[s]] = oi, set_w[s][nset[s]] = wi[s][j], nset[s]++;
            Rd *d = &rd[s][oi];
            if (d->resting && q->qty != d->qty - d->filled && guard) {
                int64_t age;
                if (__builtin_sub_overflow(now, d->priced, &age)) goto unsure;
                if (age >= ttl)
                    in[nin++] = (Intent){q->level, s, wi[s][j], oi, PyTuple_GET_ITEM(kit, RK_TTL)};
            }
        }
        /* 2. the rest pair up nearest the mid first (a stable sort on -price * side) */
        for (int i = 1; i < nfree; i++) {
            int v = free_[i], j = i;
            int64_t kv = s == 0 ? -rd[s][v].price : rd[s][v].price;
            while (j > 0 && (s == 0 ? -rd[s][free_[j - 1]].price : rd[s][free_[j - 1]].price) > kv) {
                free_[j] = free_[j - 1];
                j--;
            }
            free_[j] = v;
        }
        for (int k = 0; k < nunm; k++) {
            const Want *q = &w[unm[k]];
            if (k >= nfree) {
                in[nin++] = (Intent){q->level, s, unm[k], -1, NULL};
                continue;
            }
            int oi = free_[k];
            Rd *d = &rd[s][oi];
            set_o[s][nset[s]] = oi, set_w[s][nset[s]] = unm[k], nset[s]++;
            if (!d->resting) continue;
            int64_t age;
            if (__builtin_sub_overflow(now, d->priced, &age)) goto unsure;
            if (age < min_tib) continue;
            PyObject *stale = NULL;
            if (guard) {
                if (age >= ttl) stale = PyTuple_GET_ITEM(kit, RK_TTL);
                else if (mid > 0) {
                    int dr = drifted(d->o, mid, drift);
                    if (dr < 0) goto error;
                    if (dr == 2) goto unsure;
                    if (dr) stale = PyTuple_GET_ITEM(kit, RK_DRIFT);
                }
            }
            if (stale == NULL) {
                if (q->price > EXACT_DBL) goto unsure;
                int ge = int_ge_dbl(q->price - d->price, thr * (double)d->price);
                if (ge == 2) goto unsure;
                if (!ge) continue;
            }
            in[nin++] = (Intent){q->level, s, unm[k], oi, stale};
        }
        for (int k = nunm; k < nfree; k++) surplus[s][nsur[s]++] = free_[k]; /* 3. pulled */
    }
    /* ---- the changes, in _reconcile_slow's order */
    rc = -1;
    if ((c.nowo = PyLong_FromLongLong(now)) == NULL || (c.mido = PyLong_FromLongLong(mid)) == NULL ||
        (c.cancels = PyList_New(0)) == NULL || (c.out = PyList_New(0)) == NULL)
        goto done;
    for (int s = 0; s < 2; s++) {
        for (int k = 0; k < nset[s]; k++)
            if (set_i64(&A_lv_level, rd[s][set_o[s][k]].o, w[set_w[s][k]].level) < 0) goto done;
        for (int k = 0; k < nsur[s]; k++)
            if (rc_send_cancel(&c, rd[s][surplus[s][k]].o, PyTuple_GET_ITEM(kit, RK_PULLED), c.cancels) < 0) goto done;
    }
    for (int i = 1; i < nin; i++) { /* stable sort by (level, side) */
        Intent v = in[i];
        int j = i;
        while (j > 0 && (in[j - 1].level > v.level || (in[j - 1].level == v.level && in[j - 1].si > v.si))) {
            in[j] = in[j - 1];
            j--;
        }
        in[j] = v;
    }
    for (int i = 0; i < nin; i++) {
        const Want *q = &w[in[i].want];
        if (in[i].ord < 0) {
            PyObject *cid = NULL;
            if (rc_try_create(&c, q, in[i].si, &cid) < 0) goto done;
            Py_XDECREF(cid);
            continue;
        }
        PyObject *o = rd[in[i].si][in[i].ord].o;
        int attached = get_truth(&A_lv_attached, o);
        if (attached < 0) goto done;
        if (!attached) continue;
        PyObject *st = aget(&A_lo_state, o);
        if (st == NULL) goto done;
        int resting = same_str(st, x->st_open) || same_str(st, x->st_partial);
        Py_DECREF(st);
        if (resting && rc_try_replace(&c, q, o, in[i].si, in[i].stale) < 0) goto done;
    }
    for (int s = 0; s < 2; s++) { /* keep each side's attached orders by level */
        PyObject *lst = c.att[s];
        Py_ssize_t n = PyList_GET_SIZE(lst);
        if (n < 2) continue;
        int64_t lv[MAX_SIDE_ORDERS + MAX_WANTS];
        if (n > MAX_SIDE_ORDERS + MAX_WANTS) {
            PyErr_SetString(PyExc_RuntimeError, "more attached orders than levels");
            goto done;
        }
        for (Py_ssize_t k = 0; k < n; k++)
            if (get_i64(&A_lv_level, PyList_GET_ITEM(lst, k), &lv[k]) < 0) goto done;
        for (Py_ssize_t i = 1; i < n; i++) {
            int64_t v = lv[i];
            PyObject *ov = PyList_GET_ITEM(lst, i);
            Py_ssize_t j = i;
            while (j > 0 && lv[j - 1] > v) {
                lv[j] = lv[j - 1];
                PyList_SET_ITEM(lst, j, PyList_GET_ITEM(lst, j - 1));
                j--;
            }
            lv[j] = v;
            PyList_SET_ITEM(lst, j, ov);
        }
    }
    if (PyList_GET_SIZE(c.cancels)) {
        if (_PyList_Extend((PyListObject *)c.cancels, c.out) == NULL) goto done;
        Py_DECREF(Py_None);
        *actions = Py_NewRef(c.cancels);
    } else {
        *actions = Py_NewRef(c.out);
    }
    rc = 1;
    goto done;
maybe_error:
    if (PyErr_Occurred()) goto error;
    goto unsure;
read_fail:
    if (r < 0) goto error;
unsure:
    rc = 0;
    goto done;
error:
    rc = -1;
done:
    for (int s = 0; s < 2; s++)
        for (Py_ssize_t k = 0; k < nrd[s]; k++) Py_DECREF(rd[s][k].o);
    Py_XDECREF(attt);
    Py_XDECREF(params);
    Py_XDECREF(c.sym);
    Py_XDECREF(c.cap);
    Py_XDECREF(c.tot);
    Py_XDECREF(c.det);
    Py_XDECREF(c.gate);
    Py_XDECREF(c.id_base);
    Py_XDECREF(c.orders);
    Py_XDECREF(c.live);
    Py_XDECREF(c.replacing);
    Py_XDECREF(c.counters);
    Py_XDECREF(c.post_only);
    Py_XDECREF(c.nowo);
    Py_XDECREF(c.mido);
    Py_XDECREF(c.cancels);
    Py_XDECREF(c.out);
    return rc;
}

/* ------------------------------------------------------------------ sending */

/* Engine._send(rt, actions, now) for creates and cancels with the stock engine and
   simulator methods (ctx's send kit) and no order trace: the engine's counters and live
   map, then FillSimulator.submit (the entry latency, the order's in-flight count and
   ordering state, the arrival heap), then Engine._collect.  A batch with anything else
   (an amend, an unknown symbol) goes to Engine._send whole; the checks come first. */
ATTR(A_c_actions, "actions");
ATTR(A_c_creates, "creates");
ATTR(A_c_cancels, "cancels");
ATTR(A_sim_aseq, "_aseq");
ATTR(A_sc_submitted, "submitted");

static Attr *SEND_ATTRS[] = {&A_c_actions, &A_c_creates, &A_c_cancels, &A_sim_aseq, &A_sc_submitted, NULL};

enum { SK_CREATE_T, SK_CANCEL_T, SK_OP_CREATE, SK_OP_CANCEL, SK_ENTRY, SK_SIZE };

static PyObject *M_entry_ns;

/* the entry latency of op at t: the stock ConstantLatency's table, else the model */
static int entry_latency(Ctx *x, PyObject *kit, PyObject *op, int64_t t, int64_t *lat) {
    PyObject *table = PyTuple_GET_ITEM(kit, SK_ENTRY), *v;
    if (table != Py_None) {
        v = PyDict_GetItemWithError(table, op);
        if (v == NULL) {
            if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, op);
            return -1;
        }
        Py_INCREF(v);
    } else {
        PyObject *latency = aget(&A_sim_latency, x->sim), *rng = latency ? aget(&A_sim_rng, x->sim) : NULL;
        PyObject *to = rng ? PyLong_FromLongLong(t) : NULL;
        v = NULL;
        if (to != NULL && clock_sync() == 0) {
            PyObject *args[4] = {latency, op, to, rng};
            v = PyObject_VectorcallMethod(M_entry_ns, args, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        }
        Py_XDECREF(latency);
        Py_XDECREF(rng);
        Py_XDECREF(to);
        if (v == NULL) return -1;
    }
    *lat = as_i64(v);
    Py_DECREF(v);
    return (*lat == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* FillSimulator.submit(a, t) for a create or a cancel of a known symbol */
static int sim_submit(Ctx *x, PyObject *kit, PyObject *a, PyObject *cid, PyObject *op, int64_t t) {
    int rc = -1;
    int64_t lat, arrival, aseq;
    PyObject *inflight = NULL, *la = NULL, *entry = NULL, *counters = NULL;
    if (entry_latency(x, kit, op, t, &lat) < 0) goto out;
    arrival = t + lat;
    int preserve = get_truth(&A_sim_preserve, x->sim);
    if (preserve < 0) goto out;
    if (preserve) {
        PyObject *last;
        if ((la = aget(&A_sim_last_arrival, x->sim)) == NULL || dict_get(la, cid, &last) < 0) goto out;
        if (last != NULL) {
            int64_t l = as_i64(last);
            if (l == -1 && PyErr_Occurred()) goto out;
            if (arrival < l) arrival = l;
        }
        if (set_dict_i64(la, cid, arrival) < 0) goto out;
    }
    PyObject *cnt;
    if ((inflight = aget(&A_sim_inflight, x->sim)) == NULL || dict_get(inflight, cid, &cnt) < 0) goto out;
    int64_t n = 0;
    if (cnt != NULL && (n = as_i64(cnt)) == -1 && PyErr_Occurred()) goto out;
    if (set_dict_i64(inflight, cid, n + 1) < 0 || get_i64(&A_sim_aseq, x->sim, &aseq) < 0) goto out;
    {
        PyObject *ao = PyLong_FromLongLong(arrival), *so = ao ? PyLong_FromLongLong(aseq) : NULL;
        entry = so ? PyTuple_Pack(3, ao, so, a) : NULL;
        Py_XDECREF(ao);
        Py_XDECREF(so);
    }
    if (entry == NULL) goto out;
    PyObject *hargs[2] = {x->arrivals, entry};
    PyObject *res = PyObject_Vectorcall(heappush_fn, hargs, 2, NULL);
    if (res == NULL) goto out;
    Py_DECREF(res);
    if (set_i64(&A_sim_aseq, x->sim, aseq + 1) < 0 || (counters = aget(&A_sim_counters, x->sim)) == NULL ||
        bump(counters, &A_sc_submitted, 1) < 0)
        goto out;
    rc = 0;
out:
    Py_XDECREF(inflight);
    Py_XDECREF(la);
    Py_XDECREF(entry);
    Py_XDECREF(counters);
    return rc;
}

static int send_actions(Ctx *x, PyObject *rt, PyObject *actions, int64_t now) {
    PyObject *kit = x->send_kit;
    PyObject *o2[2] = {rt, actions};
    if (kit == NULL || !PyList_CheckExact(actions)) return call_method(x->engine, M_send, o2, 2, &now, 1);
    Py_ssize_t n = PyList_GET_SIZE(actions);
    PyObject *syms = aget(&A_sim_syms, x->sim);
    if (syms == NULL) return -1;
    int ok = PyDict_Check(syms);
    for (Py_ssize_t i = 0; ok == 1 && i < n; i++) {
        PyObject *a = PyList_GET_ITEM(actions, i);
        PyTypeObject *tp = Py_TYPE(a);
        if (tp != (PyTypeObject *)PyTuple_GET_ITEM(kit, SK_CREATE_T) &&
            tp != (PyTypeObject *)PyTuple_GET_ITEM(kit, SK_CANCEL_T)) {
            ok = 0;
            break;
        }
        PyObject *sym = aget(tp == (PyTypeObject *)PyTuple_GET_ITEM(kit, SK_CREATE_T) ? &A_co_symbol : &A_cx_symbol, a);
        ok = sym == NULL ? -1 : PyDict_Contains(syms, sym);
        Py_XDECREF(sym);
    }
    Py_DECREF(syms);
    if (ok < 0) return -1;
    if (!ok) return call_method(x->engine, M_send, o2, 2, &now, 1);
    PyObject *counters = aget(&A_counters, x->engine), *elive = counters ? aget(&A_e_live, x->engine) : NULL;
    PyObject *nowo = elive ? PyLong_FromLongLong(now) : NULL;
    int rc = nowo == NULL || !PyDict_Check(elive) ? -1 : 0;
    if (rc < 0 && !PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "Engine._live must be a dict");
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        PyObject *a = PyList_GET_ITEM(actions, i);
        int create = Py_TYPE(a) == (PyTypeObject *)PyTuple_GET_ITEM(kit, SK_CREATE_T);
        if (bump(counters, &A_c_actions, 1) < 0 || bump(counters, create ? &A_c_creates : &A_c_cancels, 1) < 0) {
            rc = -1;
            break;
        }
        PyObject *cid = aget(create ? &A_co_cid : &A_cx_cid, a);
        if (cid == NULL) {
            rc = -1;
            break;
        }
        if (create) { /* Engine._live[cid] = (symbol, side, now, qty) */
            PyObject *sym = aget(&A_co_symbol, a), *side = aget(&A_co_side, a), *qty = aget(&A_co_qty, a);
            PyObject *t = sym && side && qty ? PyTuple_Pack(4, sym, side, nowo, qty) : NULL;
            if (t == NULL || PyDict_SetItem(elive, cid, t) < 0) rc = -1;
            Py_XDECREF(t);
            Py_XDECREF(sym);
            Py_XDECREF(side);
            Py_XDECREF(qty);
        }
        if (rc == 0) rc = sim_submit(x, kit, a, cid, PyTuple_GET_ITEM(kit, create ? SK_OP_CREATE : SK_OP_CANCEL), now);
        Py_DECREF(cid);
    }
    Py_XDECREF(counters);
    Py_XDECREF(elive);
    Py_XDECREF(nowo);
    if (rc < 0) return -1;
    return collect(x);
}

/* Engine._advance(until): every exchange arrival, report and local delivery due at or
   before `until`, earliest first; ties: arrivals, then reports, then market deliveries.
   Arrivals and reports go to their Python methods, local deliveries run here. */
static int advance(Ctx *x, int64_t until) {
    for (;;) {
        int64_t t_loc = 0, t_rep = 0, t_arr = 0, best = 0;
        int h_loc = local_head(x, &t_loc);
        int h_rep = h_loc < 0 ? -1 : heap_head(x->reports, &t_rep);
        int h_arr = h_rep < 0 ? -1 : heap_head(x->arrivals, &t_arr);
        if (h_arr < 0) return -1;
        int any = 0;
        if (h_arr) best = t_arr, any = 1;
        if (h_rep && (!any || t_rep < best)) best = t_rep, any = 1;
        if (h_loc && (!any || t_loc < best)) best = t_loc, any = 1;
        if (!any || best > until) return 0;
        int64_t now;
        if (h_arr && t_arr == best) {
            if (process_arrivals(x, best) < 0) return -1;
            if (collect(x) < 0) return -1;
            continue;
        }
        if (!(h_rep && t_rep == best)) {
            if (local_deliver(x, best) < 0) return -1;
            continue;
        }
        PyObject *item = PyObject_CallOneArg(heappop_fn, x->reports);
        if (item == NULL) return -1;
        int rc = now_get(x, &now);
        if (rc == 0 && best > now) {
            now = best;
            now_set(x, now);
        }
        if (rc == 0) {
            rc = on_report(x, PyTuple_GET_ITEM(item, 2), now);
        }
        Py_DECREF(item);
        if (rc < 0) return -1;
    }
}

static int get_buf(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->itemsize != itemsize || view->len % itemsize) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_TypeError, "cache column has the wrong item size");
        return -1;
    }
    return 0;
}

/* Engine.feed's loop for rows lo..hi-1; *n counts rows taken (also when one raised). */
static int feed(Ctx *x, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t *n, int64_t *last_ts) {
    for (Py_ssize_t r = lo; r < hi; r++) {
        if (x->sym[r] >= x->nsym || x->kind[r] < K_SNAPSHOT || x->kind[r] > K_SEQ_GAP) {
            PyObject *ev = materialize(x, r); /* raises the cache's E_CACHE_CORRUPT */
            Py_XDECREF(ev);
            if (ev != NULL) PyErr_SetString(PyExc_ValueError, "a cache row the builder accepted but this loop cannot read");
            return -1;
        }
        if (((r - lo) & 4095) == 4095 && PyErr_CheckSignals() < 0) return -1; /* Ctrl-C between callbacks */
        int64_t ts = x->ts[r];
        (*n)++;
        for (;;) {
            int64_t when;
            int rc = local_head(x, &when);
            if (rc < 0) return -1;
            if (rc == 0 || when > ts) break;
            int due = due_by(x, when);
            if (due < 0) return -1;
            if (due) break;
            if (local_deliver(x, when) < 0) return -1;
        }
        int due = due_by(x, ts);
        if (due < 0) return -1;
        if (due && advance(x, ts) < 0) return -1;
        int64_t h;
        int rc = heap_head(x->arrivals, &h);
        if (rc < 0) return -1;
        /* FillSimulator.on_market: the arrivals due by ts first (Python), then the event */
        if (rc && h <= ts && process_arrivals(x, ts) < 0) return -1;
        if (sim_on_market(x, r) < 0) return -1;
        if (collect(x) < 0) return -1;
        if (local_push(x, x->rts[r] - x->shift, r) < 0) return -1;
        if (ts > *last_ts) *last_ts = ts;
    }
    return 0;
}

/* counters.name += v */
static int bump(PyObject *counters, Attr *a, Py_ssize_t v) {
    if (v == 0) return 0;
    int64_t cur;
    if (get_i64(a, counters, &cur) < 0) return -1;
    return set_i64(a, counters, cur + v);
}

static PyObject *run(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 7 || !PyTuple_CheckExact(args[2]) || PyTuple_GET_SIZE(args[2]) != 28 || !PyTuple_CheckExact(args[3]) ||
        PyTuple_GET_SIZE(args[3]) != 8 || !PyTuple_CheckExact(args[4]) || PyTuple_GET_SIZE(args[4]) != 2) {
        PyErr_SetString(PyExc_TypeError, "run(engine, sim, ctx[28], cols[8], levels[2], lo, hi)");
        return NULL;
    }
    Ctx x;
    memset(&x, 0, sizeof x);
    x.engine = args[0];
    x.sim = args[1];
    PyObject *ctx = args[2];
    x.runtimes = PyTuple_GET_ITEM(ctx, 0);
    x.sims = PyTuple_GET_ITEM(ctx, 1);
    x.materialize = PyTuple_GET_ITEM(ctx, 2);
    x.shift = PyLong_AsLongLong(PyTuple_GET_ITEM(ctx, 3));
    x.interval = PyLong_AsLongLong(PyTuple_GET_ITEM(ctx, 4));
    x.cross_fills = (int)PyLong_AsLong(PyTuple_GET_ITEM(ctx, 5)); /* 0 off, 1 on, 2 on with the stock _check_cross */
    x.local = PyTuple_GET_ITEM(ctx, 6);
    x.reports = PyTuple_GET_ITEM(ctx, 7);
    x.arrivals = PyTuple_GET_ITEM(ctx, 8);
    x.sim_reports = PyTuple_GET_ITEM(ctx, 9);
    x.ledger = PyTuple_GET_ITEM(ctx, 10);
    x.on_depth = PyTuple_GET_ITEM(ctx, 11);
    x.ln2 = PyFloat_AsDouble(PyTuple_GET_ITEM(ctx, 12));
    x.stock_decide = PyObject_IsTrue(PyTuple_GET_ITEM(ctx, 13));
    x.stock_alloc = PyObject_IsTrue(PyTuple_GET_ITEM(ctx, 14));
    x.make_snapshot = PyTuple_GET_ITEM(ctx, 15);
    x.make_context = PyTuple_GET_ITEM(ctx, 16);
    x.st_open = PyTuple_GET_ITEM(ctx, 17);
    x.st_partial = PyTuple_GET_ITEM(ctx, 18);
    x.plain_trades = PyObject_IsTrue(PyTuple_GET_ITEM(ctx, 19));
    x.make_desired = PyTuple_GET_ITEM(ctx, 20);
    x.stock_collect = PyObject_IsTrue(PyTuple_GET_ITEM(ctx, 21));
    x.report_kit = PyTuple_GET_ITEM(ctx, 22);
    if (x.report_kit == Py_None) x.report_kit = NULL;
    else if (!PyTuple_CheckExact(x.report_kit) || PyTuple_GET_SIZE(x.report_kit) != KIT_SIZE ||
             !PyType_Check(PyTuple_GET_ITEM(x.report_kit, KIT_ACK)) ||
             !PyType_Check(PyTuple_GET_ITEM(x.report_kit, KIT_CANCELED)) ||
             !PyType_Check(PyTuple_GET_ITEM(x.report_kit, KIT_OM))) {
        PyErr_SetString(PyExc_TypeError, "run: the report kit must be None or a tuple of its 12 entries");
        return NULL;
    }
    x.arrival_kit = PyTuple_GET_ITEM(ctx, 23);
    if (x.arrival_kit == Py_None) x.arrival_kit = NULL;
    else if (!PyTuple_CheckExact(x.arrival_kit) || PyTuple_GET_SIZE(x.arrival_kit) != AK_SIZE ||
             !PyType_Check(PyTuple_GET_ITEM(x.arrival_kit, AK_CREATE_T)) ||
             !PyType_Check(PyTuple_GET_ITEM(x.arrival_kit, AK_CANCEL_T)) ||
             !PyType_Check(PyTuple_GET_ITEM(x.arrival_kit, AK_ORDER_T)) ||
             !PyType_Check(PyTuple_GET_ITEM(x.arrival_kit, AK_ACK_T)) ||
             !PyType_Check(PyTuple_GET_ITEM(x.arrival_kit, AK_CANCELED_T)) ||
             (PyTuple_GET_ITEM(x.arrival_kit, AK_RESPONSE) != Py_None &&
              !PyDict_Check(PyTuple_GET_ITEM(x.arrival_kit, AK_RESPONSE)))) {
        PyErr_SetString(PyExc_TypeError, "run: the arrival kit must be None or a tuple of its 12 entries");
        return NULL;
    }
    x.reconcile_kit = PyTuple_GET_ITEM(ctx, 24);
    if (x.reconcile_kit == Py_None) x.reconcile_kit = NULL;
    else if (!PyTuple_CheckExact(x.reconcile_kit) || PyTuple_GET_SIZE(x.reconcile_kit) != RK_SIZE ||
             !PyType_Check(PyTuple_GET_ITEM(x.reconcile_kit, RK_LIVE_T)) ||
             !PyType_Check(PyTuple_GET_ITEM(x.reconcile_kit, RK_CREATE_T)) ||
             !PyType_Check(PyTuple_GET_ITEM(x.reconcile_kit, RK_CANCEL_T)) ||
             !PyTuple_CheckExact(PyTuple_GET_ITEM(x.reconcile_kit, RK_FLOW_PREFIXES)) ||
             (PyTuple_GET_ITEM(x.reconcile_kit, RK_GATES) != Py_None &&
              (!PyTuple_CheckExact(PyTuple_GET_ITEM(x.reconcile_kit, RK_GATES)) ||
               PyTuple_GET_SIZE(PyTuple_GET_ITEM(x.reconcile_kit, RK_GATES)) != GK_SIZE ||
               !PyType_Check(PyTuple_GET_ITEM(PyTuple_GET_ITEM(x.reconcile_kit, RK_GATES), GK_CHAIN_T))))) {
        PyErr_SetString(PyExc_TypeError, "run: the reconcile kit must be None or a tuple of its 15 entries");
        return NULL;
    }
    x.send_kit = PyTuple_GET_ITEM(ctx, 25);
    if (x.send_kit == Py_None) x.send_kit = NULL;
    else if (!PyTuple_CheckExact(x.send_kit) || PyTuple_GET_SIZE(x.send_kit) != SK_SIZE ||
             !PyType_Check(PyTuple_GET_ITEM(x.send_kit, SK_CREATE_T)) ||
             !PyType_Check(PyTuple_GET_ITEM(x.send_kit, SK_CANCEL_T)) ||
             (PyTuple_GET_ITEM(x.send_kit, SK_ENTRY) != Py_None && !PyDict_Check(PyTuple_GET_ITEM(x.send_kit, SK_ENTRY)))) {
        PyErr_SetString(PyExc_TypeError, "run: the send kit must be None or a tuple of its 5 entries");
        return NULL;
    }
    x.depth_min = PyObject_IsTrue(PyTuple_GET_ITEM(ctx, 26));
    x.stock_markouts = PyObject_IsTrue(PyTuple_GET_ITEM(ctx, 27));
    if (x.depth_min < 0 || x.stock_markouts < 0) return NULL;
    Py_ssize_t lo = PyLong_AsSsize_t(args[5]), hi = PyLong_AsSsize_t(args[6]);
    if (PyErr_Occurred()) return NULL;
    if (!PyTuple_CheckExact(x.runtimes) || !PyTuple_CheckExact(x.sims) ||
        PyTuple_GET_SIZE(x.runtimes) != PyTuple_GET_SIZE(x.sims) || !PyList_CheckExact(x.reports) ||
        !PyList_CheckExact(x.arrivals) || !PyList_CheckExact(x.sim_reports) || x.cross_fills < 0 || x.interval < 0 ||
        x.stock_decide < 0 || x.stock_alloc < 0 || x.plain_trades < 0 || x.stock_collect < 0) {
        PyErr_SetString(PyExc_TypeError, "run: bad context");
        return NULL;
    }
    x.nsym = PyTuple_GET_SIZE(x.runtimes);
    for (Py_ssize_t i = 0; i < x.nsym; i++) {
        PyObject *e = PyTuple_GET_ITEM(x.runtimes, i);
        if (e != Py_None && (!PyTuple_CheckExact(e) || PyTuple_GET_SIZE(e) != 7 ||
                             (PyTuple_GET_ITEM(e, 6) != Py_None && (!PyTuple_CheckExact(PyTuple_GET_ITEM(e, 6)) ||
                                                                    PyTuple_GET_SIZE(PyTuple_GET_ITEM(e, 6)) != 2)))) {
            PyErr_SetString(PyExc_TypeError, "run: runtimes entries are (rt, book, signals, ledger_book, stock_orders, "
                                             "fixed_terms, lot_unit) or None");
            return NULL;
        }
        if (e != Py_None && native(PyTuple_GET_ITEM(e, 1)) == NULL) return NULL;
    }
    static const Py_ssize_t sizes[8] = {1, 2, 8, 8, 8, 8, 8, 8};
    Py_buffer v[10];
    int got = 0;
    PyObject *result = NULL;
    for (; got < 10; got++) {
        PyObject *col = got < 8 ? PyTuple_GET_ITEM(args[3], got) : PyTuple_GET_ITEM(args[4], got - 8);
        if (get_buf(col, &v[got], got < 8 ? sizes[got] : 8) < 0) goto done;
    }
    x.rows = v[0].len;
    for (int i = 1; i < 8; i++)
        if (v[i].len / sizes[i] != x.rows) {
            PyErr_SetString(PyExc_ValueError, "cache event columns differ in length");
            goto done;
        }
    x.nlevels = v[8].len / 8;
    if (v[9].len / 8 != x.nlevels) {
        PyErr_SetString(PyExc_ValueError, "cache level columns differ in length");
        goto done;
    }
    if (lo < 0 || hi > x.rows || lo > hi) {
        PyErr_SetString(PyExc_IndexError, "row range outside the cache");
        goto done;
    }
    x.kind = v[0].buf;
    x.sym = v[1].buf;
    x.ts = v[2].buf;
    x.rts = v[3].buf;
    x.a = v[4].buf;
    x.b = v[5].buf;
    x.c = v[6].buf;
    x.lpx = v[8].buf;
    x.lqty = v[9].buf;
    x.popleft = PyObject_GetAttr(x.local, M_popleft);
    x.append = x.popleft ? PyObject_GetAttr(x.local, M_append) : NULL;
    if (x.append == NULL) goto done;
    {
        Py_ssize_t n = 0;
        int64_t last_ts;
        if (get_i64(&A_last_ts, x.engine, &last_ts) < 0) goto done;
        Ctx *outer = CUR;
        CUR = &x;
        int rc = feed(&x, lo, hi, &n, &last_ts);
        /* Engine.feed's finally: the rows still queued, the counts and the last exchange
           time, also after an error */
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        PyObject *counters = aget(&A_counters, x.engine);
        int ok = clock_sync() == 0;
        CUR = outer;
        ok = local_flush(&x) == 0 && ok && counters && bump(counters, &A_c_events, n) == 0 &&
                 bump(counters, &A_c_trades, x.trades) == 0 &&
                 bump(counters, &A_c_book_events, x.book_events) == 0 && set_i64(&A_last_ts, x.engine, last_ts) == 0;
        Py_XDECREF(counters);
        if (et != NULL) {
            PyErr_Clear();
            PyErr_Restore(et, ev, tb);
        }
        if (rc < 0 || !ok) goto done;
        result = PyLong_FromSsize_t(n);
    }
done:
    PyMem_Free(x.rq_when);
    PyMem_Free(x.rq_row);
    Py_XDECREF(x.popleft);
    Py_XDECREF(x.append);
    for (int i = 0; i < got; i++) PyBuffer_Release(&v[i]);
    return result;
}

/* lot_value(ticks, coef, exp) -> float or None: the loop's position-mark value (tests
   compare it with float(Instrument.notional_usd(ticks, 1))) */
static PyObject *py_lot_value(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "lot_value(ticks, coef, exp)");
        return NULL;
    }
    int64_t t = PyLong_AsLongLong(args[0]), c = PyLong_AsLongLong(args[1]), e = PyLong_AsLongLong(args[2]);
    if (PyErr_Occurred()) return NULL;
    double v;
    if (!lot_value(t, c, e, &v)) Py_RETURN_NONE;
    return PyFloat_FromDouble(v);
}

static PyMethodDef methods[] = {
    {"run", (PyCFunction)(void (*)(void))run, METH_FASTCALL,
     "run(engine, sim, ctx, cols, levels, lo, hi) -> rows consumed: Engine.feed over cache rows lo..hi-1."},
    {"lot_value", (PyCFunction)(void (*)(void))py_lot_value, METH_FASTCALL,
     "lot_value(ticks, coef, exp) -> float(ticks * coef * 10**exp) correctly rounded, or None when not covered."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "mmkit.core._fastfeed",
                                    "Engine.feed over columnar cache rows (the common steps in C).", -1, methods,
                                    NULL, NULL, NULL, NULL};

static PyObject *intern(const char *text) { return PyUnicode_InternFromString(text); }

PyMODINIT_FUNC PyInit__fastfeed(void) {
    PyObject *heapq = PyImport_ImportModule("heapq");
    if (heapq == NULL) return NULL;
    heappop_fn = PyObject_GetAttrString(heapq, "heappop"); /* kept for the process */
    heappush_fn = heappop_fn ? PyObject_GetAttrString(heapq, "heappush") : NULL;
    Py_DECREF(heapq);
    if (heappop_fn == NULL || heappush_fn == NULL) return NULL;
    if ((M_fill = intern("_fill")) == NULL || (S_maker = intern("maker")) == NULL || (S_fill = intern("fill")) == NULL)
        return NULL;
    PyObject *nbmod = PyImport_ImportModule("mmkit.core._nbook");
    if (nbmod == NULL) return NULL;
    NB_TYPE = (PyTypeObject *)PyObject_GetAttrString(nbmod, "NativeBook"); /* kept for the process */
    Py_DECREF(nbmod);
    if (NB_TYPE == NULL) return NULL;
    if (!PyType_Check(NB_TYPE)) {
        PyErr_SetString(PyExc_ImportError, "mmkit.core._nbook.NativeBook is not a type");
        return NULL;
    }
    for (Attr **a = ALL_ATTRS; *a != NULL; a++)
        if (((*a)->name = intern((*a)->text)) == NULL) return NULL;
    for (Attr **a = DECIDE_ATTRS; *a != NULL; a++)
        if (((*a)->name = intern((*a)->text)) == NULL) return NULL;
    for (Attr **a = REPORT_ATTRS; *a != NULL; a++)
        if (((*a)->name = intern((*a)->text)) == NULL) return NULL;
    for (Attr **a = ARRIVAL_ATTRS; *a != NULL; a++)
        if (((*a)->name = intern((*a)->text)) == NULL) return NULL;
    for (Attr **a = RECONCILE_ATTRS; *a != NULL; a++)
        if (((*a)->name = intern((*a)->text)) == NULL) return NULL;
    if ((M_check = intern("check")) == NULL || (M_on_sent = intern("on_sent")) == NULL ||
        (M_book_fill = intern("_book_fill")) == NULL)
        return NULL;
    for (Attr **a = SEND_ATTRS; *a != NULL; a++)
        if (((*a)->name = intern((*a)->text)) == NULL) return NULL;
    if ((M_entry_ns = intern("entry_ns")) == NULL) return NULL;
    for (Attr **a = GATE_ATTRS; *a != NULL; a++)
        if (((*a)->name = intern((*a)->text)) == NULL) return NULL;
    for (Attr **a = MARKOUT_ATTRS; *a != NULL; a++)
        if (((*a)->name = intern((*a)->text)) == NULL) return NULL;
    if ((M_mature = intern("_mature")) == NULL) return NULL;
    if ((M_on_create = intern("_on_create")) == NULL || (M_on_cancel = intern("_on_cancel")) == NULL ||
        (M_on_amend = intern("_on_amend")) == NULL || (M_response_ns = intern("response_ns")) == NULL ||
        (M_on_join = intern("on_join")) == NULL || (M_popitem = intern("popitem")) == NULL)
        return NULL;
    if ((M_quotes = intern("quotes")) == NULL || (M_reconcile = intern("reconcile")) == NULL ||
        (M_reconcile_slow = intern("_reconcile_slow")) == NULL ||
        (M_send = intern("_send")) == NULL || (M_advance = intern("advance")) == NULL ||
        (M_mark_positions = intern("_mark_positions")) == NULL || (M_snapshot = intern("snapshot")) == NULL ||
        (M_update_mark = intern("update_mark")) == NULL)
        return NULL;
    if ((M_process_arrivals = intern("process_arrivals")) == NULL || (M_on_report = intern("_on_report")) == NULL ||
        (M_on_trade = intern("on_trade")) == NULL || (M_on_touch = intern("on_touch")) == NULL ||
        (M_on_mid = intern("on_mid")) == NULL || (M_mark_mid2 = intern("mark_mid2")) == NULL ||
        (M_sample = intern("sample")) == NULL || (M_decide = intern("_decide")) == NULL ||
        (M_on_local = intern("_on_local_market")) == NULL ||
        (M_collect = intern("_collect")) == NULL || (M_on_market = intern("on_market")) == NULL ||
        (M_check_cross = intern("_check_cross")) == NULL || (M_popleft = intern("popleft")) == NULL ||
        (M_append = intern("append")) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
