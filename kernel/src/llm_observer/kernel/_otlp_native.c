/* Decodes the bytes of an OTLP ExportTraceServiceRequest straight into SpanBatch columns.
 *
 * The values are exactly those of ``otlp_codec.decode_traces`` over a parsed message (same types, same
 * shared resource map per ResourceSpans, last value wins for a repeated singular field, repeated
 * occurrences of an embedded message merged), without building the message first. It reads the wire
 * format of the fields it needs and skips the rest. Whatever it does not handle the way the protobuf
 * runtime does -- a known field with an unexpected wire type, groups, invalid UTF-8, nesting deeper than
 * MAX_DEPTH, a truncated buffer -- raises ``Unsupported``: the caller then decodes the request the slow
 * way, which decides what such bytes mean. Every length is checked against the buffer before it is read.
 * Equal short strings come out as one shared (immutable) object; see ``utf8``.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 32 /* AnyValue levels; the runtime allows ~45 (100 messages) */
#define N_COLUMNS 16

static PyObject *Unsupported;
static PyObject *empty_str;
static PyObject *empty_bytes;

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Cursor;

typedef struct {
    uint32_t number;
    int wire_type;
    uint64_t value;      /* varint, i64 and i32 fields */
    const uint8_t *data; /* length-delimited fields */
    Py_ssize_t len;
} Field;

static int
unsupported(const char *why)
{
    if (!PyErr_Occurred())
        PyErr_SetString(Unsupported, why);
    return -1;
}

static int
read_varint(Cursor *c, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && c->p < c->end; shift += 7) {
        uint8_t byte = *c->p++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return unsupported("truncated or overlong varint");
}

static uint64_t
little_endian(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* 1: a field was read into *f; 0: the cursor is at its end; -1: malformed (exception set). */
static int
next_field(Cursor *c, Field *f)
{
    uint64_t key, len;
    if (c->p >= c->end)
        return 0;
    if (read_varint(c, &key) < 0)
        return -1;
    if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return unsupported("invalid field number");
    f->number = (uint32_t)(key >> 3);
    f->wire_type = (int)(key & 7);
    switch (f->wire_type) {
    case WT_VARINT:
        return read_varint(c, &f->value) < 0 ? -1 : 1;
    case WT_I64:
        if (c->end - c->p < 8)
            return unsupported("truncated fixed64");
        f->value = little_endian(c->p, 8);
        c->p += 8;
        return 1;
    case WT_LEN:
        if (read_varint(c, &len) < 0)
            return -1;
        if (len > (uint64_t)(c->end - c->p))
            return unsupported("length past the end of the buffer");
        f->data = c->p;
        f->len = (Py_ssize_t)len;
        c->p += len;
        return 1;
    case WT_I32:
        if (c->end - c->p < 4)
            return unsupported("truncated fixed32");
        f->value = little_endian(c->p, 4);
        c->p += 4;
        return 1;
    default:
        return unsupported("groups and unknown wire types");
    }
}

static int
expect(const Field *f, int wire_type)
{
    return f->wire_type == wire_type ? 0 : unsupported("unexpected wire type for a known field");
}

/* Short strings repeat from span to span: attribute keys, span and scope names, model and provider names.
 * One str object per distinct short string (a direct-mapped cache, replaced on collision) means each is
 * decoded and hashed once, and a batch holds one copy instead of one per span. The decoder runs with the
 * GIL held, which guards the cache. */
#define CACHED_MAX 64
#define CACHE_SLOTS 4096

typedef struct {
    PyObject *str; /* NULL: empty slot */
    Py_ssize_t len;
    uint8_t bytes[CACHED_MAX];
} CachedStr;

static CachedStr str_cache[CACHE_SLOTS];

static PyObject *
decode_str(const Field *f)
{
    PyObject *s = PyUnicode_DecodeUTF8((const char *)f->data, f->len, NULL);
    if (s == NULL) {
        PyErr_Clear();
        unsupported("string field is not valid UTF-8");
    }
    return s;
}

static PyObject *
utf8(const Field *f)
{
    if (f->len == 0) {
        Py_INCREF(empty_str);
        return empty_str;
    }
    if (f->len > CACHED_MAX)
        return decode_str(f);
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (Py_ssize_t i = 0; i < f->len; i++)
        h = (h ^ f->data[i]) * 1099511628211ULL;
    CachedStr *slot = &str_cache[(h ^ (h >> 29)) & (CACHE_SLOTS - 1)];
    if (slot->str != NULL && slot->len == f->len && memcmp(slot->bytes, f->data, (size_t)f->len) == 0)
        return Py_NewRef(slot->str);
    PyObject *s = decode_str(f);
    if (s == NULL)
        return NULL;
    Py_XSETREF(slot->str, Py_NewRef(s));
    slot->len = f->len;
    memcpy(slot->bytes, f->data, (size_t)f->len);
    return s;
}

static PyObject *
raw_bytes(const Field *f)
{
    if (f->len == 0) {
        Py_INCREF(empty_bytes);
        return empty_bytes;
    }
    return PyBytes_FromStringAndSize((const char *)f->data, f->len);
}

/* Replace *slot (a new reference or NULL) by value (a new reference); -1 when value is NULL. */
static int
set_slot(PyObject **slot, PyObject *value)
{
    if (value == NULL)
        return -1;
    Py_XSETREF(*slot, value);
    return 0;
}

/* --- AnyValue ------------------------------------------------------------------------------------- */

enum { AV_NONE = 0, AV_ARRAY = 5, AV_KVLIST = 6, AV_SCALAR = 1 };

typedef struct {
    int kind;
    PyObject *value; /* NULL while kind is AV_NONE */
} AnyValue;

static int parse_key_value(const uint8_t *p, Py_ssize_t n, PyObject *into, int depth);

static int
parse_any_value(const uint8_t *p, Py_ssize_t n, AnyValue *av, int depth)
{
    Cursor c = {p, p + n};
    Field f;
    int r;
    if (depth > MAX_DEPTH)
        return unsupported("attribute values nested too deep");
    while ((r = next_field(&c, &f)) > 0) {
        PyObject *value = NULL;
        switch (f.number) {
        case 1: /* string_value */
            if (expect(&f, WT_LEN) < 0 || (value = utf8(&f)) == NULL)
                return -1;
            break;
        case 2: /* bool_value */
            if (expect(&f, WT_VARINT) < 0)
                return -1;
            value = PyBool_FromLong(f.value != 0);
            break;
        case 3: /* int_value */
            if (expect(&f, WT_VARINT) < 0 || (value = PyLong_FromLongLong((int64_t)f.value)) == NULL)
                return -1;
            break;
        case 4: { /* double_value */
            double d;
            if (expect(&f, WT_I64) < 0)
                return -1;
            memcpy(&d, &f.value, sizeof d);
            if ((value = PyFloat_FromDouble(d)) == NULL)
                return -1;
            break;
        }
        case 5: { /* array_value: a second occurrence merges, i.e. appends */
            if (expect(&f, WT_LEN) < 0)
                return -1;
            if (av->kind != AV_ARRAY) {
                if (set_slot(&av->value, PyList_New(0)) < 0)
                    return -1;
                av->kind = AV_ARRAY;
            }
            Cursor ac = {f.data, f.data + f.len};
            Field item;
            int ir;
            while ((ir = next_field(&ac, &item)) > 0) {
                if (item.number != 1)
                    continue;
                AnyValue element = {AV_NONE, NULL};
                if (expect(&item, WT_LEN) < 0 ||
                    parse_any_value(item.data, item.len, &element, depth + 1) < 0) {
                    Py_XDECREF(element.value);
                    return -1;
                }
                PyObject *v = element.value ? element.value : Py_NewRef(Py_None);
                int appended = PyList_Append(av->value, v);
                Py_DECREF(v);
                if (appended < 0)
                    return -1;
            }
            if (ir < 0)
                return -1;
            continue;
        }
        case 6: { /* kvlist_value: a second occurrence merges into the same map */
            if (expect(&f, WT_LEN) < 0)
                return -1;
            if (av->kind != AV_KVLIST) {
                if (set_slot(&av->value, PyDict_New()) < 0)
                    return -1;
                av->kind = AV_KVLIST;
            }
            Cursor kc = {f.data, f.data + f.len};
            Field item;
            int ir;
            while ((ir = next_field(&kc, &item)) > 0) {
                if (item.number != 1)
                    continue;
                if (expect(&item, WT_LEN) < 0 ||
                    parse_key_value(item.data, item.len, av->value, depth + 1) < 0)
                    return -1;
            }
            if (ir < 0)
                return -1;
            continue;
        }
        case 7: /* bytes_value */
            if (expect(&f, WT_LEN) < 0 || (value = raw_bytes(&f)) == NULL)
                return -1;
            break;
        default:
            continue;
        }
        Py_XSETREF(av->value, value);
        av->kind = AV_SCALAR;
    }
    return r;
}

/* One KeyValue into the dict ``into`` (a later key replaces an earlier one, as in the slow path). */
static int
parse_key_value(const uint8_t *p, Py_ssize_t n, PyObject *into, int depth)
{
    Cursor c = {p, p + n};
    Field f;
    int r;
    PyObject *key = NULL;
    AnyValue av = {AV_NONE, NULL};
    while ((r = next_field(&c, &f)) > 0) {
        if (f.number == 1) {
            if (expect(&f, WT_LEN) < 0 || set_slot(&key, utf8(&f)) < 0)
                goto fail;
        } else if (f.number == 2) {
            if (expect(&f, WT_LEN) < 0 || parse_any_value(f.data, f.len, &av, depth) < 0)
                goto fail;
        }
    }
    if (r < 0)
        goto fail;
    if (key == NULL)
        key = Py_NewRef(empty_str);
    r = PyDict_SetItem(into, key, av.value ? av.value : Py_None);
    Py_DECREF(key);
    Py_XDECREF(av.value);
    return r;
fail:
    Py_XDECREF(key);
    Py_XDECREF(av.value);
    return -1;
}

/* One element of a repeated ``attributes`` field (a KeyValue) into ``into``. */
static int
parse_attributes_field(const Field *f, PyObject *into)
{
    if (expect(f, WT_LEN) < 0)
        return -1;
    return parse_key_value(f->data, f->len, into, 0);
}

/* --- Span ------------------------------------------------------------------------------------------ */

typedef struct {
    PyObject *event_type;
    PyObject *link_type;
    PyObject *columns[N_COLUMNS];
} Target;

static PyObject *
parse_event(const Field *outer, PyObject *event_type)
{
    Cursor c = {outer->data, outer->data + outer->len};
    Field f;
    int r;
    uint64_t time = 0;
    PyObject *name = NULL, *attributes = PyDict_New(), *event = NULL, *t = NULL;
    if (attributes == NULL)
        return NULL;
    while ((r = next_field(&c, &f)) > 0) {
        if (f.number == 1) {
            if (expect(&f, WT_I64) < 0)
                goto done;
            time = f.value;
        } else if (f.number == 2) {
            if (expect(&f, WT_LEN) < 0 || set_slot(&name, utf8(&f)) < 0)
                goto done;
        } else if (f.number == 3) {
            if (parse_attributes_field(&f, attributes) < 0)
                goto done;
        }
    }
    if (r < 0 || (t = PyLong_FromUnsignedLongLong(time)) == NULL)
        goto done;
    event = PyObject_CallFunctionObjArgs(event_type, t, name ? name : empty_str, attributes, NULL);
done:
    Py_XDECREF(t);
    Py_XDECREF(name);
    Py_DECREF(attributes);
    return event;
}

static PyObject *
parse_link(const Field *outer, PyObject *link_type)
{
    Cursor c = {outer->data, outer->data + outer->len};
    Field f;
    int r;
    PyObject *trace_id = NULL, *span_id = NULL, *trace_state = NULL, *link = NULL;
    PyObject *attributes = PyDict_New();
    if (attributes == NULL)
        return NULL;
    while ((r = next_field(&c, &f)) > 0) {
        int ok = 0;
        switch (f.number) {
        case 1:
            ok = expect(&f, WT_LEN) == 0 && set_slot(&trace_id, raw_bytes(&f)) == 0;
            break;
        case 2:
            ok = expect(&f, WT_LEN) == 0 && set_slot(&span_id, raw_bytes(&f)) == 0;
            break;
        case 3:
            ok = expect(&f, WT_LEN) == 0 && set_slot(&trace_state, utf8(&f)) == 0;
            break;
        case 4:
            ok = parse_attributes_field(&f, attributes) == 0;
            break;
        default:
            ok = 1;
        }
        if (!ok)
            goto done;
    }
    if (r < 0)
        goto done;
    link = PyObject_CallFunctionObjArgs(link_type, trace_id ? trace_id : empty_bytes,
                                        span_id ? span_id : empty_bytes,
                                        trace_state ? trace_state : empty_str, attributes, NULL);
done:
    Py_XDECREF(trace_id);
    Py_XDECREF(span_id);
    Py_XDECREF(trace_state);
    Py_DECREF(attributes);
    return link;
}

static int
parse_status(const Field *outer, PyObject **message, int32_t *code)
{
    Cursor c = {outer->data, outer->data + outer->len};
    Field f;
    int r;
    while ((r = next_field(&c, &f)) > 0) {
        if (f.number == 2) {
            if (expect(&f, WT_LEN) < 0 || set_slot(message, utf8(&f)) < 0)
                return -1;
        } else if (f.number == 3) {
            if (expect(&f, WT_VARINT) < 0)
                return -1;
            *code = (int32_t)f.value;
        }
    }
    return r;
}

enum {
    C_TRACE_ID, C_SPAN_ID, C_PARENT, C_TRACE_STATE, C_NAME, C_KIND, C_START, C_END, C_STATUS_CODE,
    C_STATUS_MESSAGE, C_ATTRIBUTES, C_RESOURCE, C_SCOPE_NAME, C_SCOPE_VERSION, C_EVENTS, C_LINKS
};

static int
parse_span(const Field *outer, Target *t, PyObject *resource, PyObject *scope_name, PyObject *scope_version)
{
    Cursor c = {outer->data, outer->data + outer->len};
    Field f;
    int r, status = -1;
    int32_t kind = 0, code = 0;
    uint64_t start = 0, end = 0;
    PyObject *v[N_COLUMNS] = {NULL};
    PyObject *attributes = PyDict_New(), *events = PyList_New(0), *links = PyList_New(0);
    if (attributes == NULL || events == NULL || links == NULL)
        goto done;
    while ((r = next_field(&c, &f)) > 0) {
        int ok = 1;
        switch (f.number) {
        case 1:
            ok = expect(&f, WT_LEN) == 0 && set_slot(&v[C_TRACE_ID], raw_bytes(&f)) == 0;
            break;
        case 2:
            ok = expect(&f, WT_LEN) == 0 && set_slot(&v[C_SPAN_ID], raw_bytes(&f)) == 0;
            break;
        case 3:
            ok = expect(&f, WT_LEN) == 0 && set_slot(&v[C_TRACE_STATE], utf8(&f)) == 0;
            break;
        case 4:
            ok = expect(&f, WT_LEN) == 0 && set_slot(&v[C_PARENT], raw_bytes(&f)) == 0;
            break;
        case 5:
            ok = expect(&f, WT_LEN) == 0 && set_slot(&v[C_NAME], utf8(&f)) == 0;
            break;
        case 6:
            ok = expect(&f, WT_VARINT) == 0;
            kind = (int32_t)f.value;
            break;
        case 7:
            ok = expect(&f, WT_I64) == 0;
            start = f.value;
            break;
        case 8:
            ok = expect(&f, WT_I64) == 0;
            end = f.value;
            break;
        case 9:
            ok = parse_attributes_field(&f, attributes) == 0;
            break;
        case 11: {
            PyObject *event = NULL;
            ok = expect(&f, WT_LEN) == 0 && (event = parse_event(&f, t->event_type)) != NULL &&
                 PyList_Append(events, event) == 0;
            Py_XDECREF(event);
            break;
        }
        case 13: {
            PyObject *link = NULL;
            ok = expect(&f, WT_LEN) == 0 && (link = parse_link(&f, t->link_type)) != NULL &&
                 PyList_Append(links, link) == 0;
            Py_XDECREF(link);
            break;
        }
        case 15:
            ok = expect(&f, WT_LEN) == 0 && parse_status(&f, &v[C_STATUS_MESSAGE], &code) == 0;
            break;
        default:
            break;
        }
        if (!ok)
            goto done;
    }
    if (r < 0)
        goto done;
    if ((v[C_KIND] = PyLong_FromLong(kind)) == NULL || (v[C_START] = PyLong_FromUnsignedLongLong(start)) == NULL ||
        (v[C_END] = PyLong_FromUnsignedLongLong(end)) == NULL || (v[C_STATUS_CODE] = PyLong_FromLong(code)) == NULL)
        goto done;
    for (int i = 0; i < N_COLUMNS; i++) {
        if (v[i] != NULL)
            continue;
        if (i == C_TRACE_ID || i == C_SPAN_ID || i == C_PARENT)
            v[i] = Py_NewRef(empty_bytes);
        else if (i == C_ATTRIBUTES)
            v[i] = Py_NewRef(attributes);
        else if (i == C_RESOURCE)
            v[i] = Py_NewRef(resource);
        else if (i == C_SCOPE_NAME)
            v[i] = Py_NewRef(scope_name);
        else if (i == C_SCOPE_VERSION)
            v[i] = Py_NewRef(scope_version);
        else if (i == C_EVENTS)
            v[i] = Py_NewRef(events);
        else if (i == C_LINKS)
            v[i] = Py_NewRef(links);
        else
            v[i] = Py_NewRef(empty_str);
    }
    for (int i = 0; i < N_COLUMNS; i++)
        if (PyList_Append(t->columns[i], v[i]) < 0)
            goto done;
    status = 0;
done:
    for (int i = 0; i < N_COLUMNS; i++)
        Py_XDECREF(v[i]);
    Py_XDECREF(attributes);
    Py_XDECREF(events);
    Py_XDECREF(links);
    return status;
}

/* --- ScopeSpans, ResourceSpans, the request --------------------------------------------------------- */

typedef int (*MessageFn)(const Field *f, void *ctx);

/* ``fn(field, ctx)`` for every occurrence of the message field ``number`` in [data, data + len). */
static int
each_message(const uint8_t *data, Py_ssize_t len, uint32_t number, MessageFn fn, void *ctx)
{
    Cursor c = {data, data + len};
    Field f;
    int r;
    while ((r = next_field(&c, &f)) > 0)
        if (f.number == number && (expect(&f, WT_LEN) < 0 || fn(&f, ctx) < 0))
            return -1;
    return r;
}

static int
add_attribute(const Field *f, void *into)
{
    return parse_key_value(f->data, f->len, (PyObject *)into, 0);
}

/* A Resource: its attributes into the map every span of the ResourceSpans shares (occurrences merge). */
static int
add_resource(const Field *f, void *resource)
{
    return each_message(f->data, f->len, 1, add_attribute, resource);
}

typedef struct {
    Target *t;
    PyObject *resource;
    PyObject *name;
    PyObject *version;
} Scope;

/* An InstrumentationScope: its name and version (occurrences merge: the last value wins). */
static int
read_scope(const Field *outer, void *ctx)
{
    Scope *scope = ctx;
    Cursor c = {outer->data, outer->data + outer->len};
    Field f;
    int r;
    while ((r = next_field(&c, &f)) > 0) {
        if (f.number == 1 && (expect(&f, WT_LEN) < 0 || set_slot(&scope->name, utf8(&f)) < 0))
            return -1;
        if (f.number == 2 && (expect(&f, WT_LEN) < 0 || set_slot(&scope->version, utf8(&f)) < 0))
            return -1;
    }
    return r;
}

static int
add_span(const Field *f, void *ctx)
{
    Scope *scope = ctx;
    return parse_span(f, scope->t, scope->resource, scope->name, scope->version);
}

static int
add_scope_spans(const Field *outer, void *ctx)
{
    Scope scope = *(Scope *)ctx;
    scope.name = Py_NewRef(empty_str);
    scope.version = Py_NewRef(empty_str);
    /* The scope may follow its spans on the wire: read it first. */
    int r = each_message(outer->data, outer->len, 1, read_scope, &scope);
    if (r == 0)
        r = each_message(outer->data, outer->len, 2, add_span, &scope);
    Py_DECREF(scope.name);
    Py_DECREF(scope.version);
    return r;
}

static int
add_resource_spans(const Field *outer, void *t)
{
    Scope scope = {t, PyDict_New(), NULL, NULL};
    if (scope.resource == NULL)
        return -1;
    /* The resource may follow its spans too, and every occurrence merges into the one shared map. */
    int r = each_message(outer->data, outer->len, 1, add_resource, scope.resource);
    if (r == 0)
        r = each_message(outer->data, outer->len, 2, add_scope_spans, &scope);
    Py_DECREF(scope.resource);
    return r;
}

PyDoc_STRVAR(decode_traces_doc,
             "decode_traces(data, columns, event_type, link_type) -> None\n\n"
             "Append every span of the ExportTraceServiceRequest ``data`` to ``columns``, the 16 lists of a\n"
             "SpanBatch in field order. Raises Unsupported for anything to decode the slow way; the lists\n"
             "may then hold part of the request.");

static PyObject *
decode_traces(PyObject *self, PyObject *args)
{
    Py_buffer data;
    PyObject *columns, *event_type, *link_type;
    if (!PyArg_ParseTuple(args, "y*O!OO", &data, &PyTuple_Type, &columns, &event_type, &link_type))
        return NULL;
    Target t = {event_type, link_type, {NULL}};
    PyObject *result = NULL;
    if (PyTuple_GET_SIZE(columns) != N_COLUMNS) {
        PyErr_SetString(PyExc_ValueError, "columns must hold the 16 lists of a SpanBatch");
        goto done;
    }
    for (int i = 0; i < N_COLUMNS; i++) {
        t.columns[i] = PyTuple_GET_ITEM(columns, i);
        if (!PyList_Check(t.columns[i])) {
            PyErr_SetString(PyExc_TypeError, "every column must be a list");
            goto done;
        }
    }
    if (each_message(data.buf, data.len, 1, add_resource_spans, &t) == 0)
        result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&data);
    return result;
}

/* --- the acknowledgement's span check ------------------------------------------------------------- */

typedef struct {
    uint64_t earliest, latest;
    Py_ssize_t spans;
    int failed; /* a span did not pass: the walk stops (-1 without an exception) */
} Check;

static int
all_zero(const uint8_t *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* 0 when the span passes ``drop_invalid_spans``' inline check; -1 when it does not (or holds events, which
 * only the full check reads), with ``failed`` set, or when its bytes are not what the decoder expects
 * (exception set). */
static int
check_span(const Field *outer, void *ctx)
{
    Check *k = ctx;
    Cursor c = {outer->data, outer->data + outer->len};
    Field f;
    int r, events = 0;
    const uint8_t *tid = NULL, *sid = NULL;
    Py_ssize_t tid_len = 0, sid_len = 0, parent_len = 0;
    uint64_t start = 0, end = 0;
    while ((r = next_field(&c, &f)) > 0) {
        switch (f.number) {
        case 1:
        case 2:
        case 4:
            if (expect(&f, WT_LEN) < 0)
                return -1;
            if (f.number == 1)
                tid = f.data, tid_len = f.len;
            else if (f.number == 2)
                sid = f.data, sid_len = f.len;
            else
                parent_len = f.len;
            break;
        case 7:
        case 8:
            if (expect(&f, WT_I64) < 0)
                return -1;
            if (f.number == 7)
                start = f.value;
            else
                end = f.value;
            break;
        case 11:
            if (expect(&f, WT_LEN) < 0)
                return -1;
            events = 1;
            break;
        default:
            break;
        }
    }
    if (r < 0)
        return -1;
    k->spans++;
    int ok = tid_len == 16 && sid_len == 8 && !all_zero(tid, 16) && !all_zero(sid, 8) &&
             (parent_len == 0 || parent_len == 8) && 0 < start && start <= end && end <= k->latest &&
             start >= k->earliest && !events;
    if (ok)
        return 0;
    k->failed = 1;
    return -1;
}

static int
check_scope_spans(const Field *outer, void *ctx)
{
    return each_message(outer->data, outer->len, 2, check_span, ctx);
}

static int
check_resource_spans(const Field *outer, void *ctx)
{
    return each_message(outer->data, outer->len, 2, check_scope_spans, ctx);
}

PyDoc_STRVAR(count_valid_spans_doc,
             "count_valid_spans(data, earliest, latest) -> int | None\n\n"
             "How many spans the ExportTraceServiceRequest ``data`` holds when every one of them has ids of\n"
             "the right length that are not all zero, an empty or 8-byte parent, ``0 < start <= end``, start\n"
             "and end within ``[earliest, latest]`` and no events; None as soon as one does not (or the bytes\n"
             "hold something the decoder would hand to the slow way): the caller then checks every span.");

static PyObject *
count_valid_spans(PyObject *self, PyObject *args)
{
    Py_buffer data;
    Check k = {0, 0, 0, 0};
    if (!PyArg_ParseTuple(args, "y*KK", &data, &k.earliest, &k.latest))
        return NULL;
    int r = each_message(data.buf, data.len, 1, check_resource_spans, &k);
    PyBuffer_Release(&data);
    if (r < 0 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(Unsupported))
            return NULL;
        PyErr_Clear();
    }
    if (r != 0 || k.failed)
        Py_RETURN_NONE;
    return PyLong_FromSsize_t(k.spans);
}

static PyMethodDef methods[] = {
    {"decode_traces", decode_traces, METH_VARARGS, decode_traces_doc},
    {"count_valid_spans", count_valid_spans, METH_VARARGS, count_valid_spans_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "llm_observer.kernel._otlp_native",
    "OTLP trace requests decoded from their bytes into SpanBatch columns.", -1, methods,
};

PyMODINIT_FUNC
PyInit__otlp_native(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Unsupported = PyErr_NewException("llm_observer.kernel._otlp_native.Unsupported", PyExc_ValueError, NULL);
    empty_str = PyUnicode_FromStringAndSize("", 0);
    empty_bytes = PyBytes_FromStringAndSize("", 0);
    if (Unsupported == NULL || empty_str == NULL || empty_bytes == NULL ||
        PyModule_AddObjectRef(m, "Unsupported", Unsupported) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
