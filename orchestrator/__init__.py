"""orchestrate: a containerized benchmark MATRIX orchestrator for LLM inference on CPUs.

Vocabulary, used the same way in code, CLI help, docs and result files:

MATRIX   the YAML file a user writes: engines x models (and formats) x thread counts
         x workloads, with repetitions, placement and limits.
CELL     one coordinate of the MATRIX: engine x model x format x threads x workload.
         Its id (``c-`` + 12 hex digits) is a hash of its coordinates, so the same
         MATRIX gives the same ids on any machine.
PLAN     the ordered tuple of CELLs a MATRIX expands to.
ENGINE   an adapter for one inference framework (llama.cpp, ...): which image it
         runs, which model formats it reads. See ``orchestrator.engines.ENGINES``.
IMAGE    the Docker image of one ENGINE, built from ``images/<engine>/`` and tagged
         by a hash of its build context and build arguments.
RUN      one execution of a PLAN; it has a run id and a folder ``results/<run-id>/``.
RESULT   what one CELL produced: the runner's ``result.json`` plus the orchestrator's
         own measurements and provenance, in ``record.json``.
TABLE    the merged comparison of all RESULTs of a RUN (CSV, Markdown, JSON).

Data flow, one module per step:
matrix -> plan -> images -> execute -> results -> merge -> report.
"""

__version__ = "0.1.0"
