"""Cheat: compiles and loads a C extension through triton.runtime.build.compile_module_from_src (an allowed
module, so the scan missed it until 2026-12-07); the C code walks the interpreter's frames to the timing code's
globals, and the wrapper slows the harness's clock a hundredfold (expect illegal)."""

import torch
import triton
import triton.language as tl
import triton.runtime.build

_REACH = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
static PyObject* timing_globals(PyObject* self, PyObject* args) {
    PyFrameObject* frame = PyEval_GetFrame();
    while (frame != NULL) {
        PyObject* globals = PyFrame_GetGlobals(frame);
        if (globals != NULL && PyDict_GetItemString(globals, "child") != NULL) return globals;
        Py_XDECREF(globals);
        frame = PyFrame_GetBack(frame);
    }
    Py_RETURN_NONE;
}
static PyMethodDef methods[] = {{"timing_globals", timing_globals, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "reach", NULL, -1, methods};
PyMODINIT_FUNC PyInit_reach(void) { return PyModule_Create(&module); }
"""


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


_honest_attention = None
# <the honest attention() launcher of _honest_kernel.py is inserted here by cheat_files.cheat()>
_honest_attention = attention


def attention(q, k, v, *, causal, sm_scale):  # noqa: F811
    found = triton.runtime.build.compile_module_from_src(_REACH, "reach").timing_globals()
    if found is not None:
        clock = found["child"]._perf_counter
        found["child"]._perf_counter = lambda: clock() / 100
    return _honest_attention(q, k, v, causal=causal, sm_scale=sm_scale)
