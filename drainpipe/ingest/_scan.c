/* Compiled readers for the two hottest loops of drain ingest: framing a body and reading
 * its router lines. Each one does exactly what its Python counterpart does on the inputs
 * it takes, and hands everything else back to it:
 *
 *   split_lines(body) -> list[bytes] | None
 *       frames.split_frames's fast path (`_split_lines`): every frame one line ending in
 *       its only newline; None for any other body.
 *
 *   read_router(frames, out) -> list[bytes] | None
 *       parse.bulkrouter's router pattern (`_PLAIN`) over the n frames as `joined_lines` makes
 *       them lines, writing eight int64 rows of n into `out` (a writable C-contiguous
 *       buffer of 8*n int64): ts_ms, service, status, code, head id, flags (1 read,
 *       2 has service, 4 has code), then connect and bytes as float64 bit patterns
 *       (NaN when the line has none), so that Python views them without a pass.
 *       A line not in the router's usual shape gets flags 0 (left to the per-line parser),
 *       as the pattern's catch-all leaves it. Returns the distinct dyno heads (the dyno up
 *       to its first dot), indexed by head id, or None when a line names the router
 *       (` heroku router ` after its host) but is not read here: then the pattern decides
 *       for the whole body.
 *
 * No allocation per line but the frames of split_lines; no Python object per line in
 * read_router.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#define MAX_PREFIX_DIGITS 7
#define MAX_FRAME_BYTES (1 << 20)
#define MAX_HEADS 64

static PyObject *
split_lines(PyObject *self, PyObject *arg)
{
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "split_lines takes bytes");
        return NULL;
    }
    const char *body = PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    if (size == 0 || body[size - 1] != '\n')
        Py_RETURN_NONE;
    PyObject *frames = PyList_New(0);
    if (frames == NULL)
        return NULL;
    Py_ssize_t pos = 0;
    while (pos < size) {
        const char *nl = memchr(body + pos, '\n', (size_t)(size - pos));
        Py_ssize_t end = (nl - body) + 1; /* just after the newline */
        Py_ssize_t i = pos;
        long length = 0;
        int digits = 0;
        while (i < end && digits <= MAX_PREFIX_DIGITS && body[i] >= '0' && body[i] <= '9') {
            length = length * 10 + (body[i] - '0');
            i++;
            digits++;
        }
        if (digits == 0 || digits > MAX_PREFIX_DIGITS || i >= end || body[i] != ' ')
            goto other;
        i++; /* the message starts after the space */
        if (length > MAX_FRAME_BYTES || i + length != end)
            goto other;
        PyObject *frame = PyBytes_FromStringAndSize(body + i, end - i);
        if (frame == NULL) {
            Py_DECREF(frames);
            return NULL;
        }
        int failed = PyList_Append(frames, frame);
        Py_DECREF(frame);
        if (failed) {
            Py_DECREF(frames);
            return NULL;
        }
        pos = end;
    }
    return frames;
other:
    Py_DECREF(frames);
    Py_RETURN_NONE;
}

/* -- router lines ------------------------------------------------------------------- */

typedef struct {
    const char *p; /* next byte */
    const char *end; /* the line's newline */
} Cursor;

static int
lit(Cursor *c, const char *s, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0)
        return 0;
    c->p += n;
    return 1;
}
#define LIT(c, s) lit((c), (s), sizeof(s) - 1)

static int
is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* [^ ]*+ within the line; returns how many bytes it took */
static Py_ssize_t
run_nonspace(Cursor *c)
{
    const char *start = c->p;
    while (c->p < c->end && *c->p != ' ')
        c->p++;
    return c->p - start;
}

/* [0-9]*+ */
static void
run_digits(Cursor *c)
{
    while (c->p < c->end && is_digit(*c->p))
        c->p++;
}

/* QUOTED of _PLAIN: "[^"]*+" | [^ "]*+ ; the closing quote must be on the line */
static int
quoted(Cursor *c)
{
    if (c->p < c->end && *c->p == '"') {
        const char *close = memchr(c->p + 1, '"', (size_t)(c->end - c->p - 1));
        if (close == NULL)
            return 0;
        c->p = close + 1;
        return 1;
    }
    while (c->p < c->end && *c->p != ' ' && *c->p != '"')
        c->p++;
    return 1;
}

/* Up to `most` digits as a number; how many were read goes to *count. */
static int64_t
number(Cursor *c, int most, int *count)
{
    int64_t v = 0;
    int k = 0;
    while (k < most && c->p < c->end && is_digit(*c->p)) {
        v = v * 10 + (*c->p - '0');
        c->p++;
        k++;
    }
    *count = k;
    return v;
}

static int
two(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar. */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* syslog._second_ms of `s` + "Z": epoch ms of YYYY-MM-DD[Tt]HH:MM:SS into *ms; 0 when
 * it names no real instant. */
static int
second_ms(const char *s, int64_t *ms)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return 0;
    static const int at[14] = {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18};
    for (int i = 0; i < 14; i++)
        if (!is_digit(s[at[i]]))
            return 0;
    int year = two(s) * 100 + two(s + 2);
    int month = two(s + 5), day = two(s + 8);
    int hour = two(s + 11), minute = two(s + 14), second = two(s + 17);
    if (hour > 23 || minute > 59 || second > 60)
        return 0;
    if (year < 1 || month < 1 || month > 12 || day < 1)
        return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > mdays[month - 1] + (month == 2 && leap))
        return 0;
    int64_t days = days_from_civil(year, month, day);
    *ms = ((days * 24 + hour) * 60 + minute) * 60000 + (int64_t)second * 1000;
    return 1;
}

enum { ROUTER_READ = 1, HAS_SERVICE = 2, HAS_CODE = 4 };
enum { NOT_ROUTER = 0, READ = 1, UNREAD_ROUTER = 2 };

typedef struct {
    const char *at;
    Py_ssize_t len;
} Head;

typedef struct {
    int64_t ts, service, status, code;
    double connect, bytes; /* NAN when absent */
    int flags;
    const char *head;
    Py_ssize_t head_len;
} Request;

/* One line [p, end) (end at its newline): NOT_ROUTER when the pattern's catch-all
 * takes it, READ with *r filled (flags 0 when its time is not a real instant), or
 * UNREAD_ROUTER. */
static int
read_line(const char *p, const char *end, Request *r)
{
    Cursor c = {p, end};
    /* <PRI>1 with PRI 0..191 written without leading zeros */
    if (!LIT(&c, "<"))
        return NOT_ROUTER;
    int k;
    int64_t pri = number(&c, 3, &k);
    if (k == 0 || (k > 1 && c.p[-k] == '0') || pri > 191 || !LIT(&c, ">1 "))
        return NOT_ROUTER;
    /* ([^ ]{19]) */
    if (c.end - c.p < 19)
        return NOT_ROUTER;
    const char *second = c.p;
    if (memchr(second, ' ', 19) != NULL)
        return NOT_ROUTER;
    c.p += 19;
    /* (?>\.([0-9]{1,3})[0-9]*+|) */
    int64_t fraction = 0;
    if (c.p < c.end && *c.p == '.' && c.p + 1 < c.end && is_digit(c.p[1])) {
        c.p++;
        fraction = number(&c, 3, &k);
        fraction *= k == 1 ? 100 : k == 2 ? 10 : 1;
        run_digits(&c);
    }
    /* ([Zz]|[+-][^ ]{5}) then a space */
    const char *offset = c.p;
    Py_ssize_t offset_len;
    if (c.p < c.end && (*c.p == 'Z' || *c.p == 'z'))
        offset_len = 1;
    else if (c.p < c.end && (*c.p == '+' || *c.p == '-') && c.end - c.p >= 6 &&
             memchr(c.p + 1, ' ', 5) == NULL)
        offset_len = 6;
    else
        return NOT_ROUTER;
    c.p += offset_len;
    if (!LIT(&c, " "))
        return NOT_ROUTER;
    /* [^ ]++ heroku router */
    if (run_nonspace(&c) == 0 || !LIT(&c, " heroku router "))
        return NOT_ROUTER;
    /* From here a line the pattern might read is not read here: UNREAD_ROUTER. */
    if (memchr(c.p, '\\', (size_t)(c.end - c.p)) != NULL)
        return UNREAD_ROUTER; /* quoted values with escapes: the pattern's _ESCAPED */
    if (run_nonspace(&c) == 0 || !LIT(&c, " at="))
        return UNREAD_ROUTER;
    if (!LIT(&c, "info") && !LIT(&c, "warning") && !LIT(&c, "error"))
        return UNREAD_ROUTER;
    r->flags = ROUTER_READ;
    r->code = 0;
    if (LIT(&c, " code=H")) {
        r->code = number(&c, 4, &k);
        if (k == 0 || !LIT(&c, " desc=") || !quoted(&c))
            return UNREAD_ROUTER;
        r->flags |= HAS_CODE;
    }
    if (!LIT(&c, " method="))
        return UNREAD_ROUTER;
    run_nonspace(&c);
    if (!LIT(&c, " path=") || !quoted(&c) || !LIT(&c, " host="))
        return UNREAD_ROUTER;
    run_nonspace(&c);
    if (!LIT(&c, " request_id="))
        return UNREAD_ROUTER;
    run_nonspace(&c);
    if (!LIT(&c, " fwd=") || !quoted(&c) || !LIT(&c, " dyno="))
        return UNREAD_ROUTER;
    /* (?:([^ ".]++)[^ "]*+|) */
    r->head = c.p;
    while (c.p < c.end && *c.p != ' ' && *c.p != '"' && *c.p != '.')
        c.p++;
    r->head_len = c.p - r->head;
    if (r->head_len > 0)
        while (c.p < c.end && *c.p != ' ' && *c.p != '"')
            c.p++;
    if (!LIT(&c, " connect="))
        return UNREAD_ROUTER;
    r->connect = (double)number(&c, 8, &k);
    if (k == 0)
        r->connect = NAN;
    LIT(&c, "ms");
    if (!LIT(&c, " service="))
        return UNREAD_ROUTER;
    r->service = number(&c, 8, &k);
    if (k)
        r->flags |= HAS_SERVICE;
    LIT(&c, "ms");
    if (!LIT(&c, " status="))
        return UNREAD_ROUTER;
    r->status = number(&c, 3, &k);
    if (!LIT(&c, " bytes="))
        return UNREAD_ROUTER;
    r->bytes = (double)number(&c, 8, &k);
    if (k == 0)
        r->bytes = NAN;
    /* (?: [^\n]*+\n|\r*+\n) */
    if (c.p < c.end && *c.p == ' ') {
        /* anything up to the newline */
    } else {
        while (c.p < c.end && *c.p == '\r')
            c.p++;
        if (c.p != c.end)
            return UNREAD_ROUTER;
    }
    /* The time: read by the pattern, converted (and checked) as parse.bulkrouter does. */
    int64_t ms = 0;
    int real = second_ms(second, &ms);
    int64_t offset_ms = 0;
    if (offset_len == 6) {
        const char *o = offset;
        if (o[3] != ':' || !is_digit(o[1]) || !is_digit(o[2]) || !is_digit(o[4]) ||
            !is_digit(o[5]) || two(o + 1) > 23 || two(o + 4) > 59)
            real = 0;
        else {
            offset_ms = ((int64_t)two(o + 1) * 60 + two(o + 4)) * 60000;
            if (o[0] == '+')
                offset_ms = -offset_ms; /* ahead of UTC: subtract to reach UTC */
        }
    }
    if (!real)
        r->flags = 0; /* not a real instant: left to the per-line parser */
    r->ts = ms + offset_ms + fraction;
    return READ;
}

static PyObject *
read_router(PyObject *self, PyObject *args)
{
    PyObject *frames;
    Py_buffer out;
    if (!PyArg_ParseTuple(args, "O!w*", &PyList_Type, &frames, &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = PyList_GET_SIZE(frames);
    if (out.len != (Py_ssize_t)(8 * n * sizeof(int64_t))) {
        PyErr_SetString(PyExc_ValueError, "read_router: out must hold 8 * len(frames) int64");
        goto done;
    }
    int64_t *ts = (int64_t *)out.buf, *service = ts + n, *status = ts + 2 * n,
            *code = ts + 3 * n, *head_id = ts + 4 * n, *flags = ts + 5 * n,
            *connect = ts + 6 * n, *bytes = ts + 7 * n; /* float64 bits */
    Head heads[MAX_HEADS];
    int nheads = 0;
    for (Py_ssize_t line = 0; line < n; line++) {
        PyObject *frame = PyList_GET_ITEM(frames, line);
        if (!PyBytes_Check(frame)) {
            PyErr_SetString(PyExc_TypeError, "read_router: frames must be bytes");
            goto done;
        }
        const char *p = PyBytes_AS_STRING(frame);
        Py_ssize_t size = PyBytes_GET_SIZE(frame);
        /* As parse.bulkrouter.joined_lines makes lines of frames: a frame is its line with or
         * without its newline at the end; one with a newline before its end is an
         * empty line, which no router line is. */
        const char *end = p + size;
        if (size > 0 && end[-1] == '\n')
            end--;
        Request r;
        int got = memchr(p, '\n', (size_t)(end - p)) != NULL ? NOT_ROUTER : read_line(p, end, &r);
        if (got == UNREAD_ROUTER)
            goto fallback;
        if (got == NOT_ROUTER) {
            ts[line] = service[line] = status[line] = code[line] = head_id[line] = 0;
            flags[line] = connect[line] = bytes[line] = 0;  /* 0.0 as float64 too */
            continue;
        }
        int h = 0;
        while (h < nheads &&
               (heads[h].len != r.head_len || memcmp(heads[h].at, r.head, r.head_len)))
            h++;
        if (h == nheads) {
            if (nheads == MAX_HEADS)
                goto fallback;
            heads[nheads].at = r.head;
            heads[nheads].len = r.head_len;
            nheads++;
        }
        ts[line] = r.ts;
        service[line] = r.service;
        status[line] = r.status;
        code[line] = r.code;
        head_id[line] = h;
        flags[line] = r.flags;
        memcpy(&connect[line], &r.connect, sizeof(double));
        memcpy(&bytes[line], &r.bytes, sizeof(double));
    }
    result = PyList_New(nheads);
    if (result == NULL)
        goto done;
    for (int h = 0; h < nheads; h++) {
        PyObject *b = PyBytes_FromStringAndSize(heads[h].at, heads[h].len);
        if (b == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, h, b);
    }
    goto done;
fallback:
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"split_lines", split_lines, METH_O, "Frames of a body of one-line frames, or None."},
    {"read_router", read_router, METH_VARARGS,
     "Read the usual router lines among frames into out; the dyno heads, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan", "Compiled framing and router-line readers.", -1, methods,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    return PyModule_Create(&module);
}
