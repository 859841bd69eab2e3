"""Where the teeth go: the two dental arches and one plan (size, position, axis, state) per tooth.

World frame (RAS mm): x = 0 is the midline, +x the patient's right; +y anterior; z = 0 the
occlusal plane, upper crowns point to -z. Arc length ``s`` along an arch is signed: s > 0 on the
patient's right (quadrants 1 and 4), s < 0 on the left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from TeethSegmentationLib.phantom.anatomy import ToothShape, tooth_shape
from TeethSegmentationLib.phantom.family import Family
from TeethSegmentationLib.phantom.grid import rotation
from TeethSegmentationLib.phantom.variation import draw_events

# Arch placement per type 1..8 (degrees): torque inclines the crown buccally, tip mesially (Andrews'
# "six keys" norms, rounded). Tooth sizes come from ``anatomy.WHEELER``.
PLACEMENT = {
    True: {"torque": (20, 15, 10, 6, 5, 3, 0, -4), "tip": (5, 8, 10, 5, 5, 5, 2, 0)},
    False: {"torque": (18, 16, 8, 0, -5, -9, -12, -14), "tip": (2, 2, 5, 3, 3, 3, 2, 0)},
}


@dataclass
class Arch:
    """A dense polyline through the crown contact points, extended straight behind the last molars."""

    upper: bool
    points: np.ndarray  # (N, 2) xy
    s: np.ndarray  # (N,) signed arc length, increasing from the patient's left to right
    tangents: np.ndarray  # (N, 2) d(points)/ds
    length: float  # arc length from the midline to the distal end of the third molar
    _tree: cKDTree = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._tree = cKDTree(self.points)

    @property
    def normals(self) -> np.ndarray:
        """Outward (buccal/labial) unit normals."""
        return np.stack([-self.tangents[:, 1], self.tangents[:, 0]], axis=1)

    def at(self, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Point, distal unit direction and outward normal at arc length s."""
        i = int(np.clip(np.searchsorted(self.s, s), 0, len(self.s) - 1))
        tangent = self.tangents[i] * (1.0 if s >= 0 else -1.0)
        return self.points[i].copy(), tangent, self.normals[i]

    def maps(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arc length and signed distance (mm, + outward) of every (x, y) column: 2-D arrays."""
        xx, yy = np.meshgrid(x.ravel(), y.ravel(), indexing="ij")
        query = np.stack([xx.ravel(), yy.ravel()], axis=1)
        _, idx = self._tree.query(query, workers=-1)
        offset = query - self.points[idx]
        dist = np.einsum("ij,ij->i", offset, self.normals[idx])
        return self.s[idx].reshape(xx.shape).astype(np.float32), dist.reshape(xx.shape).astype(np.float32)


def make_arch(
    upper: bool, length: float, exponent: float, aspect: float, y_front: float, step: float, form: str = "power"
) -> Arch:
    """Half an arch from the midline (t = 0) to the distal end (t = 1), mirrored to the left, scaled so that
    half the arch is ``length`` long. Forms: "power" y = D (1 - t^p); "catenary" y = D (1 - (cosh(c t) - 1) /
    (cosh(c) - 1)), which is flatter at the front and turns faster behind the canines (c = 1 + exponent)."""
    t = np.linspace(0, 1, 4001)
    if form == "catenary":
        c = 1.0 + exponent
        depth = 1 - (np.cosh(c * t) - 1) / (np.cosh(c) - 1)
    else:
        depth = 1 - t**exponent
    xy = np.stack([t, aspect * depth], axis=1)
    half = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    xy *= length / half[-1]
    half *= length / half[-1]
    s_new = np.arange(0, length + 45.0, step)
    end_dir = (xy[-1] - xy[-30]) / np.linalg.norm(xy[-1] - xy[-30])
    inside = s_new <= length
    pts = np.empty((len(s_new), 2))
    pts[inside, 0] = np.interp(s_new[inside], half, xy[:, 0])
    pts[inside, 1] = np.interp(s_new[inside], half, xy[:, 1])
    pts[~inside] = xy[-1] + (s_new[~inside, None] - length) * end_dir  # straight on behind the arch
    pts[:, 1] += y_front - pts[0, 1]
    # Both sides: the left side mirrored (x -> -x), s negative, ordered left end -> right end.
    left = pts[:0:-1] * [-1, 1]
    points = np.concatenate([left, pts])
    s = np.concatenate([-s_new[:0:-1], s_new])
    tangents = np.gradient(points, s, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    return Arch(upper, points, s, tangents, float(length))


@dataclass
class ToothPlan:
    fdi: int
    centre: np.ndarray  # RAS of the crown's cervical centre (cemento-enamel junction)
    frame: np.ndarray  # 3x3 columns: u distal, v buccal, w towards the occlusal plane
    shape: ToothShape
    restoration: str | None = None  # None or one of mouth.RESTORATIONS
    impacted: bool = False
    implant: bool = False  # an implant in the place of a missing tooth: drawn, never labelled
    pontic: bool = False  # a bridge's false tooth: drawn, never labelled
    arch_s: float = 0.0

    @property
    def type(self) -> int:
        return self.fdi % 10

    @property
    def upper(self) -> bool:
        return self.fdi // 10 in (1, 2, 5, 6)  # primary teeth (children.py): quadrants 5-8

    @property
    def natural(self) -> bool:
        return not (self.implant or self.pontic)

    md = property(lambda self: self.shape.md)
    bl = property(lambda self: self.shape.bl)
    crown = property(lambda self: self.shape.crown)
    root = property(lambda self: self.shape.root)


@dataclass
class Dentition:
    upper: Arch
    lower: Arch
    teeth: list[ToothPlan]  # present teeth, implants and pontics
    missing: list[int]
    bite_gap: float  # mm between the cusp tips of the two arches (<= 0: closed, teeth touch)
    cej: dict[bool, tuple[np.ndarray, np.ndarray]]  # jaw (upper?) -> (s, z of the cervical line) samples
    info: dict


def _tooth_frame(distal: np.ndarray, normal: np.ndarray, upper: bool, torque: float, tip: float, spin: float):
    u = np.array([distal[0], distal[1], 0.0])
    v = np.array([normal[0], normal[1], 0.0])
    w = np.array([0.0, 0.0, -1.0 if upper else 1.0])
    frame = np.stack([u, v, w], axis=1)
    # Tip the crown mesially (about v), incline it buccally (about u), then spin it about its own axis.
    local = rotation([0, 1, 0], -tip) @ rotation([1, 0, 0], -torque) @ rotation([0, 0, 1], spin)
    return frame @ local


def _missing(rng: np.random.Generator, fov: str) -> dict[int, str]:
    """FDI -> how the gap looks: 'gap' (space kept), 'closed' (neighbours drifted in) or 'implant'."""
    out: dict[int, str] = {}
    for q in (1, 2, 3, 4):
        for t in range(1, 9):
            p = 0.45 if t == 8 else (0.05 if t in (4, 5, 6, 7) else 0.015)
            if rng.random() < p:
                out[10 * q + t] = (
                    "closed" if t == 8 else str(rng.choice(["gap", "closed", "implant"], p=[0.4, 0.35, 0.25]))
                )
    return out


def _quadrant(upper: bool, side: int) -> int:
    return (1 if side > 0 else 2) if upper else (4 if side > 0 else 3)


def plan_dentition(
    rng: np.random.Generator, fov: str, options: dict, fam: Family, extra: np.random.Generator
) -> Dentition:
    """Both arches and every tooth's plan. ``rng`` draws what family A always drew (so a seed keeps its
    missing teeth and restorations); ``extra`` draws the anatomy added since (shapes, ``variation``).
    ``options["dentition"] == "mixed"``: a child's mouth (``children.plan_mixed``) from its own stream."""
    if options.get("dentition", "permanent") == "mixed":
        from TeethSegmentationLib.phantom.children import plan_mixed  # children builds on this module

        return plan_mixed(rng, options, fam)
    scale = rng.uniform(0.92, 1.08)
    missing = _missing(rng, fov) if options.get("missing", True) else {}
    bite_gap = float(rng.choice([rng.uniform(-0.3, 0.2), rng.uniform(1.0, 5.0)], p=[0.55, 0.45]))
    bite_gap = float(options.get("bite_gap", bite_gap))
    exponent, aspect = rng.uniform(1.7, 2.8), rng.uniform(1.5, 2.0)
    crowding = {j: rng.uniform(-0.6, 0.2) for j in (True, False)}  # < 0: crowns overlap, so they touch
    spee = rng.uniform(0.0, 1.5)
    overjet = rng.uniform(2.5, 5.0)
    n_restorations = rng.poisson(1.3) if options.get("metal", True) else 0
    restorable = [n for n in range(11, 49) if n % 10 in (4, 5, 6, 7) and n not in missing and n // 10 in (1, 2, 3, 4)]
    restored = {
        int(n): str(rng.choice(["filling", "crown", "rct"], p=[0.5, 0.3, 0.2]))
        for n in rng.choice(restorable, size=min(n_restorations, len(restorable)), replace=False)
    }
    events = draw_events(extra, missing, restored, options)
    impact_p = 0.35 if fov == "head" else 0.12
    teeth: list[ToothPlan] = []
    cej: dict[bool, tuple[np.ndarray, np.ndarray]] = {}
    arches = {}
    for upper in (True, False):
        table = PLACEMENT[upper]
        sizes = {t: scale * rng.uniform(0.95, 1.05) for t in range(1, 9)}
        shapes = {}
        widths = {}
        for side in (1, -1):
            quad = _quadrant(upper, side)
            for t in range(1, 9):
                n = 10 * quad + t
                shapes[n] = tooth_shape(upper, t, sizes[t], fam, extra)
                closed = missing.get(n) == "closed"
                widths[n] = (
                    0.0 if closed else 0.96 * shapes[n].md + crowding[upper] + rng.normal(0, 0.2) + events.width(n)
                )
        length = max(sum(widths[10 * q + t] for t in range(1, 9)) for q in ((1, 2) if upper else (4, 3)))
        y_front = 0.0 if upper else -overjet
        arch_aspect = aspect * (1.0 if upper else 0.92)
        arch = make_arch(upper, length + 0.5, exponent, arch_aspect, y_front, 0.25, fam.arch_form)
        arches[upper] = arch
        samples = []
        for side in (1, -1):
            s = 0.0
            for t in range(1, 9):
                n = 10 * _quadrant(upper, side) + t
                if widths[n] == 0.0:
                    continue
                s_mid = s + widths[n] / 2
                s += widths[n]
                plan = _plan_tooth(rng, n, side * s_mid, arch, table, shapes[n], bite_gap, spee, events)
                samples.append((side * s_mid, plan.centre[2]))
                if n in missing and missing[n] not in ("implant", "pontic"):
                    continue
                plan.implant = missing.get(n) == "implant"
                plan.pontic = missing.get(n) == "pontic"
                plan.restoration = restored.get(n)
                if t == 8 and rng.random() < impact_p:
                    impact(rng, plan)
                if plan.natural:
                    events.apply(plan, extra)
                teeth.append(plan)
        samples.sort()
        cej[upper] = (np.array([p[0] for p in samples]), np.array([p[1] for p in samples]))
    natural = [p for p in teeth if p.natural]
    info = {
        "missing": sorted(missing),
        "missing_kind": {str(k): v for k, v in sorted(missing.items())},
        "restorations": {str(p.fdi): p.restoration for p in natural if p.restoration},
        "implants": sorted(p.fdi for p in teeth if p.implant),
        "pontics": sorted(p.fdi for p in teeth if p.pontic),
        "impacted": sorted(p.fdi for p in natural if p.impacted),
        "bite_gap_mm": round(bite_gap, 2),
        "arch_form": fam.arch_form,
        "arch_exponent": round(exponent, 2),
        "arch_width_mm": round(float(np.ptp(arches[True].points[np.abs(arches[True].s) <= arches[True].length, 0])), 1),
        "arch_depth_mm": round(float(np.ptp(arches[True].points[np.abs(arches[True].s) <= arches[True].length, 1])), 1),
        **events.describe(natural),
    }
    return Dentition(arches[True], arches[False], teeth, sorted(missing), bite_gap, cej, info)


def _plan_tooth(rng, fdi: int, s: float, arch: Arch, table: dict, shape: ToothShape, bite_gap, spee, events):
    t = fdi % 10
    upper = fdi // 10 in (1, 2, 5, 6)
    point, distal, normal = arch.at(s)
    torque = table["torque"][t - 1] + rng.normal(0, 3)
    tip = table["tip"][t - 1] + rng.normal(0, 2.5)
    spin = rng.normal(0, 5) + (rng.uniform(-25, 25) if rng.random() < 0.08 else 0.0) + events.spins.get(fdi, 0.0)
    frame = _tooth_frame(distal, normal, upper, torque, tip, spin)
    shape.crown *= rng.uniform(0.95, 1.05)
    shape.root *= rng.uniform(0.95, 1.05)
    crown = shape.crown
    # Curve of Spee: premolars sit a little lower than incisors and molars, in both arches.
    frac = abs(s) / arch.length
    z_tip = (bite_gap / 2 if upper else -bite_gap / 2) - spee * np.sin(np.pi * min(frac, 1.0))
    if upper and t in (1, 2):
        z_tip -= rng.uniform(1.0, 2.5)  # overbite: upper incisors reach past the lower ones
    shift = rng.normal(0, 0.4) + events.shifts.get(fdi, 0.0)  # + buccal, - lingual (crowded incisors)
    anchor = np.array([point[0], point[1], 0.0]) + normal_3(normal) * shift
    # The crown's mid-height sits on the arch line; its tip on the occlusal plane.
    centre = anchor - frame[:, 2] * crown / 2
    centre[2] = z_tip - frame[2, 2] * crown
    return ToothPlan(fdi, centre, frame, shape, arch_s=s)


def normal_3(normal2: np.ndarray) -> np.ndarray:
    return np.array([normal2[0], normal2[1], 0.0])


def impact(rng: np.random.Generator, plan: ToothPlan, angle: tuple[float, float] = (25, 90)) -> None:
    """A tooth stuck in the bone: tipped mesially (or lying down), crown below the crest."""
    plan.impacted = True
    tilt = rng.uniform(*angle)
    plan.frame = plan.frame @ rotation([0, 1, 0], -tilt)  # crown towards the mesial neighbour
    plan.centre = plan.centre + np.array([0, 0, 1.0 if plan.upper else -1.0]) * (plan.crown * 0.8 + 2.0)
    plan.shape.root *= rng.uniform(0.4, 0.8)  # roots still forming
