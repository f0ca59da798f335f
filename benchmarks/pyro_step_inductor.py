"""What compiling Pyro's recorded SVI step with TorchInductor would give, against the TorchScript replay
the suite runs (``pyro_recorded_step``).

    python -m benchmarks.pyro_step_inductor [CALLS]

For each model (the suite's family guide, ``JitTrace_ELBO``), in this process: the step is recorded
as the backend records it (``torch_compiled.recorded_graph``: make_fx's ATen graph, simplified), then
run as the suite runs it (TorchScript) and compiled by Inductor (``compile_fx``: what
``torch.compile``'s Inductor backend runs on a captured graph, without Dynamo's guard checks on each
call; ``fallback_random`` so that the draws are torch's generator's, as in the eager step).
Prints per model: the graph's operations, microseconds per step of each (CPU time of ``CALLS`` calls
at the same inputs, in inference mode, best of ROUNDS), Inductor's compile wall seconds (its first
call, with an empty cache of its own, removed after: what a first run would pay per program, C++
compiler included; the first model's include Inductor's import), and
the largest absolute difference of the two steps' outputs at the same generator state, and whether
they are bitwise equal. Inductor needs a C++ compiler at run time; without one this prints why.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore", category=FutureWarning, module="torch")  # Inductor's own deprecations

from ppl_suite.numerics import setup  # noqa: E402

setup()  # float64, one thread: as in the suite's workers

import pyro  # noqa: E402
import torch  # noqa: E402

from ppl_suite import registry  # noqa: E402
from ppl_suite.backends import pyro as pyro_backend  # noqa: E402
from ppl_suite.backends.base import SVIConfig  # noqa: E402
from ppl_suite.backends.pyro_draws import check_draws  # noqa: E402
from ppl_suite.backends.pyro_recorded_step import replayed, step_inputs  # noqa: E402
from ppl_suite.problem import Problem  # noqa: E402
from ppl_suite.targets.torch_compiled import recorded_graph  # noqa: E402

CASES = (("normal_normal", "mean_field"), ("bayes_linreg", "mean_field"), ("ppca", "amortized"))
ROUNDS, LR, SEED = 3, 0.01, 0


def per_call_microseconds(function, inputs: tuple[torch.Tensor, ...], calls: int) -> float:
    """Best over ROUNDS of the CPU microseconds per call of ``function(*inputs)`` in inference mode."""
    best = float("inf")
    with torch.inference_mode():
        for _ in range(ROUNDS):
            start = time.thread_time()
            for _ in range(calls):
                function(*inputs)
            best = min(best, (time.thread_time() - start) / calls * 1e6)
    return best


def compare(name: str, guide: str, calls: int) -> str:
    """One line for the step of ``guide`` on ``name`` (module docstring)."""
    problem = Problem.build(name, 0)
    data, params = pyro_backend.as_torch(problem.data), pyro_backend.as_torch(problem.params)
    pyro.enable_validation(False)
    pyro.set_rng_seed(SEED)
    pyro.get_param_store().clear()
    draws = check_draws(registry.implementation(name, "pyro"), data, params)
    steps = pyro_backend._family_run(problem, guide, SVIConfig(), data, params, draws).steps
    steps(LR)  # the eager first step, then the recording
    steps(LR)  # a replay
    if steps.replay is None:
        return f"{name}/{guide}: not recorded ({steps.path})"
    # copies: the replay's state is made of inference tensors, which make_fx cannot record from
    inputs = step_inputs(LR, steps.count + 1, tuple(value.clone() for value in steps.state))
    with torch.random.fork_rng(devices=[]):
        step, _ = steps._step()
        graph = recorded_graph(step, inputs, draws=True)
        start = time.perf_counter()  # Inductor's import (the first model's) counted in
        from torch._inductor import config as inductor_config
        from torch._inductor.compile_fx import compile_fx

        inductor_config.fallback_random = True
        inductor = compile_fx(graph, list(inputs))
        try:
            with torch.inference_mode():
                inductor(*inputs)
        except Exception as error:  # no C++ compiler, or a graph Inductor refuses
            return f"{name}/{guide}: Inductor failed ({type(error).__name__}: {str(error).splitlines()[0]})"
        compile_seconds = time.perf_counter() - start
        torchscript_us = per_call_microseconds(steps.replay, inputs, calls)
        inductor_us = per_call_microseconds(inductor, inputs, calls)
        torch.manual_seed(SEED)
        expected = replayed(steps.replay, inputs)
        torch.manual_seed(SEED)
        with torch.inference_mode():
            found = inductor(*inputs)
    difference = max(float((a - b).abs().max()) for a, b in zip(expected, found, strict=True))
    bitwise = all(torch.equal(a, b) for a, b in zip(expected, found, strict=True))
    return (
        f"{name}/{guide}: {len(graph.graph.nodes)} graph nodes; TorchScript {torchscript_us:.0f} us/step, "
        f"Inductor {inductor_us:.0f} us/step ({torchscript_us / inductor_us:.1f}x), compiled in "
        f"{compile_seconds:.1f} s; outputs differ by at most {difference:.1e} (bitwise equal: {bitwise})"
    )


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory(prefix="ppl-suite-inductor-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # read when Inductor is first imported
        for name, guide in CASES:
            print(compare(name, guide, calls), flush=True)


if __name__ == "__main__":
    main()
