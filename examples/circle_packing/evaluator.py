"""Circle packing: 26 circles in the unit square, maximize the sum of radii (best known ~2.635)."""

import importlib

import numpy as np

from evoagent import Descriptors, Evaluator, StageResult, Status

N_CIRCLES = 26


def run_packing() -> tuple:
    """Runs in the sandbox: import the candidate and return its raw packing."""
    centers, radii = importlib.import_module("packing").pack()
    return np.asarray(centers, dtype=np.float64), np.asarray(radii, dtype=np.float64)


class CirclePackingEvaluator(Evaluator):
    name = "circle_packing"
    score_unit = "sum of radii"
    description = f"packing.py defines pack() -> (centers (n,2), radii (n,)) for {N_CIRCLES} circles in [0,1]^2."
    entry = "packing.py"
    stages = ("validate",)

    def validate(self, candidate, sandbox) -> StageResult:
        out = sandbox.call(run_packing, files=candidate.files, timeout_s=30)
        if not out.ok:
            return StageResult.fail(out.status, out.reason, logs=out.logs)
        centers, radii = out.value  # judged here, in the trusted process
        if centers.shape != (N_CIRCLES, 2) or radii.shape != (N_CIRCLES,):
            return StageResult.fail(Status.INCORRECT, f"want shapes ({N_CIRCLES}, 2) and ({N_CIRCLES},), "
                                                      f"got {centers.shape} and {radii.shape}")
        if not (np.isfinite(centers).all() and np.isfinite(radii).all()) or (radii < 0).any():
            return StageResult.fail(Status.INCORRECT, "centers and radii must be finite, radii >= 0")
        if ((centers - radii[:, None]) < -1e-9).any() or ((centers + radii[:, None]) > 1 + 1e-9).any():
            return StageResult.fail(Status.INCORRECT, "a circle reaches outside the unit square")
        gap = np.linalg.norm(centers[:, None] - centers[None], axis=-1) - (radii[:, None] + radii[None])
        i, j = np.triu_indices(N_CIRCLES, 1)
        if (gap[i, j] < -1e-9).any():
            k = int(np.argmin(gap[i, j]))
            return StageResult.fail(Status.INCORRECT, f"circles {i[k]} and {j[k]} overlap by {-gap[i, j][k]:.3g}")
        return StageResult(metrics={"sum_radii": float(radii.sum())},
                           details={"smallest_radius": float(radii.min()), "largest_radius": float(radii.max())})

    def descriptors(self, candidate, result) -> Descriptors:
        """MAP-Elites cells: how unequal the circles are (smallest and largest radius)."""
        details = result.stage("validate").details
        return Descriptors(values={name: details[name] for name in ("smallest_radius", "largest_radius")},
                           bins={"smallest_radius": (0.02, 0.04, 0.06, 0.08), "largest_radius": (0.1, 0.12, 0.14)})
