"""The evoagent exception hierarchy.

    EvoagentError
     ├── ConfigError          (ValueError)    a config file, key or value is wrong
     ├── RunStoreError        (RuntimeError)  the run directory or database cannot be used
     │    └── IncompatibleRunError            made by a different schema version
     ├── SandboxError         (RuntimeError)  the sandbox itself failed (never the candidate)
     ├── ClusterError         (ConnectionError) a Ray cluster cannot be joined
     │    └── ClusterLost                      the cluster was lost while the run went on (resume it)
     ├── EvaluatorError       (RuntimeError)  an evaluator is defined wrongly
     ├── KernelSourceError    (ValueError)    a kernel file breaks its target's contract (CUDA_SOURCE)
     ├── BudgetExhausted      (RuntimeError)  a token, dollar, time or trial budget ran out
     └── LLMError             (RuntimeError)  the model API failed after retries
          └── PromptTooLong                   the prompt does not fit the model's context window

Candidate failures are never exceptions: they are `EvalResult`s with a status label.
"""

from __future__ import annotations


class EvoagentError(Exception):
    """Base class of every error evoagent raises on purpose."""


class ConfigError(EvoagentError, ValueError):
    """A configuration file, key or value is wrong; the message names it and what is expected."""


class RunStoreError(EvoagentError, RuntimeError):
    """The run directory or its database cannot be used (missing, locked, corrupted)."""


class IncompatibleRunError(RunStoreError):
    """The run directory was written by an incompatible schema version."""


class SandboxError(EvoagentError, RuntimeError):
    """The sandbox machinery failed; a fault of ours, reported as `harness_error`."""


class ClusterError(EvoagentError, ConnectionError):
    """A Ray cluster cannot be joined (the message names the cause)."""


class ClusterLost(ClusterError):
    """The cluster's head stopped answering while the run went on; the message says how to resume."""


class EvaluatorError(EvoagentError, RuntimeError):
    """An Evaluator subclass is defined wrongly (for example a stage with no method)."""


class KernelSourceError(EvoagentError, ValueError):
    """A kernel file breaks its target's contract in a way found while reading it (e.g. its CUDA_SOURCE)."""


class BudgetExhausted(EvoagentError, RuntimeError):
    """A budget (trials, wall time, tokens, USD) ran out; the engine stops cleanly."""


class LLMError(EvoagentError, RuntimeError):
    """The language model backend failed after its retries."""


class PromptTooLong(LLMError):
    """The API refused the prompt as longer than the model's context window (compact and retry)."""
