/* Arrow buffers for the string columns of ``otel_traces``, built from SpanBatch values without a Python
 * object per value.
 *
 * ``string_map`` lays attribute dicts out as the three buffers of a ``Map(String, String)`` column (map
 * offsets, then keys and values as Arrow ``utf8`` offsets and bytes), stringifying each value as
 * ``arrow.stringify`` does: the common kinds here (str, bool, int, float, None), every other kind by
 * calling the ``stringify`` it is given. ``hex_ids`` lays ids out as lower-case hex strings.
 *
 * Anything unexpected -- a non-dict map, a non-str key, a non-bytes id, a string that is not valid UTF-8
 * (lone surrogates), more than 2 GiB in one column -- raises TypeError, ValueError or OverflowError, and
 * the caller then builds the column the Python way, which decides what such values mean.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} Buffer;

static int
reserve(Buffer *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    char *data = PyMem_Realloc(b->data, cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static int
append(Buffer *b, const char *s, size_t n)
{
    if (reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

/* One Arrow utf8 column being built: int32 offsets (starting with 0) and the bytes. */
typedef struct {
    Buffer offsets;
    Buffer data;
} Strings;

static int
start_strings(Strings *s)
{
    int32_t zero = 0;
    return append(&s->offsets, (const char *)&zero, sizeof zero);
}

/* Close the string just written to s->data. */
static int
end_string(Strings *s)
{
    if (s->data.len > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "more than 2 GiB of strings in one column");
        return -1;
    }
    int32_t end = (int32_t)s->data.len;
    return append(&s->offsets, (const char *)&end, sizeof end);
}

static int
add_str(Strings *s, PyObject *str)
{
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(str, &n);
    if (utf8 == NULL)
        return -1; /* UnicodeEncodeError (a ValueError): lone surrogates */
    if (append(&s->data, utf8, (size_t)n) < 0)
        return -1;
    return end_string(s);
}

static int
add_value(Strings *s, PyObject *value, PyObject *stringify)
{
    PyTypeObject *type = Py_TYPE(value);
    if (type == &PyUnicode_Type)
        return add_str(s, value);
    if (type == &PyBool_Type) {
        if (value == Py_True ? append(&s->data, "true", 4) : append(&s->data, "false", 5))
            return -1;
        return end_string(s);
    }
    if (type == &PyLong_Type) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (!overflow) {
            char digits[24];
            int n = snprintf(digits, sizeof digits, "%lld", v);
            if (append(&s->data, digits, (size_t)n) < 0)
                return -1;
            return end_string(s);
        }
        /* beyond 64 bits: as Python writes it */
    }
    if (type == &PyFloat_Type) {
        /* exactly float.__repr__ */
        char *text = PyOS_double_to_string(PyFloat_AS_DOUBLE(value), 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL)
            return -1;
        int rc = append(&s->data, text, strlen(text));
        PyMem_Free(text);
        if (rc < 0)
            return -1;
        return end_string(s);
    }
    if (value == Py_None)
        return end_string(s);
    PyObject *text = type == &PyLong_Type ? PyObject_Str(value) : PyObject_CallOneArg(stringify, value);
    if (text == NULL)
        return -1;
    if (!PyUnicode_Check(text)) {
        Py_DECREF(text);
        PyErr_SetString(PyExc_TypeError, "stringify must return str");
        return -1;
    }
    int rc = add_str(s, text);
    Py_DECREF(text);
    return rc;
}

static PyObject *
take_bytes(Buffer *b)
{
    return PyBytes_FromStringAndSize(b->data ? b->data : "", (Py_ssize_t)b->len);
}

static void
release(Buffer *b)
{
    PyMem_Free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

PyDoc_STRVAR(string_map_doc,
             "string_map(maps, stringify) -> (map_offsets, key_offsets, key_data, value_offsets, "
             "value_data, entries)\n\n"
             "The buffers of a Map(String, String) column, one map per dict in the list ``maps``.");

static PyObject *
string_map(PyObject *self, PyObject *args)
{
    PyObject *maps, *stringify, *result = NULL;
    if (!PyArg_ParseTuple(args, "O!O:string_map", &PyList_Type, &maps, &stringify))
        return NULL;
    Buffer map_offsets = {0};
    Strings keys = {{0}}, values = {{0}};
    int64_t entries = 0;
    int32_t zero = 0;
    if (append(&map_offsets, (const char *)&zero, sizeof zero) < 0 || start_strings(&keys) < 0 ||
        start_strings(&values) < 0)
        goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(maps); i++) {
        PyObject *map = PyList_GET_ITEM(maps, i);
        if (!PyDict_CheckExact(map)) {
            PyErr_SetString(PyExc_TypeError, "every map must be a dict");
            goto done;
        }
        Py_INCREF(map); /* stringify runs Python code: keep the dict alive while it is walked */
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        int failed = 0;
        while (PyDict_Next(map, &pos, &key, &value)) {
            if (!PyUnicode_CheckExact(key)) {
                PyErr_SetString(PyExc_TypeError, "every key must be a str");
                failed = 1;
                break;
            }
            Py_INCREF(key);
            Py_INCREF(value);
            failed = add_str(&keys, key) < 0 || add_value(&values, value, stringify) < 0;
            Py_DECREF(key);
            Py_DECREF(value);
            if (failed)
                break;
            entries++;
        }
        Py_DECREF(map);
        if (failed)
            goto done;
        if (entries > INT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "more than 2**31 map entries in one column");
            goto done;
        }
        int32_t end = (int32_t)entries;
        if (append(&map_offsets, (const char *)&end, sizeof end) < 0)
            goto done;
    }
    result = Py_BuildValue("(NNNNNL)", take_bytes(&map_offsets), take_bytes(&keys.offsets),
                           take_bytes(&keys.data), take_bytes(&values.offsets), take_bytes(&values.data),
                           (long long)entries);
done:
    release(&map_offsets);
    release(&keys.offsets);
    release(&keys.data);
    release(&values.offsets);
    release(&values.data);
    return result;
}

PyDoc_STRVAR(hex_ids_doc, "hex_ids(ids) -> (offsets, data)\n\n"
                          "The buffers of a utf8 column holding each bytes of the list ``ids`` in lower-case hex.");

static PyObject *
hex_ids(PyObject *self, PyObject *args)
{
    static const char digits[] = "0123456789abcdef";
    PyObject *ids, *result = NULL;
    if (!PyArg_ParseTuple(args, "O!:hex_ids", &PyList_Type, &ids))
        return NULL;
    Strings out = {{0}};
    if (start_strings(&out) < 0)
        goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ids); i++) {
        PyObject *id = PyList_GET_ITEM(ids, i);
        if (!PyBytes_CheckExact(id)) {
            PyErr_SetString(PyExc_TypeError, "every id must be bytes");
            goto done;
        }
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(id);
        size_t n = (size_t)PyBytes_GET_SIZE(id);
        if (reserve(&out.data, 2 * n) < 0)
            goto done;
        char *w = out.data.data + out.data.len;
        for (size_t j = 0; j < n; j++) {
            w[2 * j] = digits[p[j] >> 4];
            w[2 * j + 1] = digits[p[j] & 15];
        }
        out.data.len += 2 * n;
        if (end_string(&out) < 0)
            goto done;
    }
    result = Py_BuildValue("(NN)", take_bytes(&out.offsets), take_bytes(&out.data));
done:
    release(&out.offsets);
    release(&out.data);
    return result;
}

static PyMethodDef methods[] = {
    {"string_map", string_map, METH_VARARGS, string_map_doc},
    {"hex_ids", hex_ids, METH_VARARGS, hex_ids_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "llm_observer.storage.clickhouse._arrow_native",
    "Arrow buffers of otel_traces' string and Map(String, String) columns from SpanBatch values.", -1, methods,
};

PyMODINIT_FUNC
PyInit__arrow_native(void)
{
    return PyModule_Create(&module);
}
