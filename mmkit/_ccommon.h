/* Helpers shared by mmkit's optional C modules (see setup.py). */
#ifndef MMKIT_CCOMMON_H
#define MMKIT_CCOMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Call an event builder (core.events make_*) with n new references, which it consumes;
   if any argument failed to build (NULL), release the others and return NULL. */
static PyObject *mm_call_builder(PyObject *make, PyObject **args, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (args[i] == NULL) {
            for (size_t j = 0; j < n; j++) Py_XDECREF(args[j]);
            return NULL;
        }
    }
    PyObject *ev = PyObject_Vectorcall(make, args, n, NULL);
    for (size_t i = 0; i < n; i++) Py_DECREF(args[i]);
    return ev;
}

#endif
