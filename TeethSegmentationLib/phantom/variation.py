"""What makes one mouth unlike another beyond tooth sizes: crowding and overlapping incisors, rotations
about the long axis (up to 45 degrees), diastemas and spacing, partly erupted or impacted third molars and
canines, young patients (open apices, tooth germs) and old ones (narrow pulps), retained and resorbed
roots, bridges (a pontic replaces a tooth between two crowned abutments), edentulous stretches and wide
(mesio-occluso-distal) restorations. Drawn from the phantom's second random stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from TeethSegmentationLib.phantom.grid import rotation

if TYPE_CHECKING:
    from TeethSegmentationLib.phantom.dentition import ToothPlan

QUADRANTS = (1, 2, 3, 4)


@dataclass
class Events:
    widths: dict[int, float] = field(default_factory=dict)  # mm added to a tooth's slot along the arch
    shifts: dict[int, float] = field(default_factory=dict)  # mm off the arch (+ buccal, - lingual)
    spins: dict[int, float] = field(default_factory=dict)  # degrees about the long axis
    erupting: dict[int, float] = field(default_factory=dict)  # fraction of the crown still under the crest
    impacted_canines: list[int] = field(default_factory=list)
    age: str = "adult"  # "young": open apices and third-molar germs; "old": narrow pulps
    retained: dict[int, float] = field(default_factory=dict)  # fdi -> fracture level (mm from the cervix)
    resorbed: dict[int, float] = field(default_factory=dict)  # fdi -> fraction of the root lost
    edentulous: list[int] = field(default_factory=list)

    def width(self, fdi: int) -> float:
        return self.widths.get(fdi, 0.0)

    def apply(self, plan: ToothPlan, rng: np.random.Generator) -> None:
        """Change one natural tooth's shape and position by this mouth's events."""
        shape, n = plan.shape, plan.fdi
        if self.age == "young":
            shape.pulp = 1.6
            if plan.type == 7:
                shape.open_apex, shape.root = True, shape.root * 0.7
            if plan.type == 3 and rng.random() < 0.3:  # canines erupt at 11-12 years: some still on their way
                self.erupting[n] = float(rng.uniform(0.3, 0.6))
            if plan.type == 8 and not plan.impacted:  # a crown without roots, deep in the bone
                shape.root *= 0.12
                _sink(plan, plan.crown + 3.0)
                plan.impacted = True
        elif self.age == "old":
            shape.pulp = 0.6
        if n in self.erupting and not plan.impacted:
            _sink(plan, self.erupting[n] * plan.crown)
        if n in self.impacted_canines:
            plan.impacted = True
            plan.frame = plan.frame @ rotation([1, 0, 0], float(rng.uniform(25, 55)))  # crown tipped palatally
            _sink(plan, plan.crown + float(rng.uniform(2, 5)))
            plan.centre = plan.centre + _palatal(plan) * float(rng.uniform(3, 6))
        if n in self.retained:
            shape.crown_present = False
            shape.extra["fracture_mm"] = self.retained[n]
        if n in self.resorbed:
            shape.root *= 1 - self.resorbed[n]
            shape.extra["resorbed"] = round(self.resorbed[n], 2)

    def describe(self, natural: list[ToothPlan]) -> dict:
        present = {p.fdi for p in natural}
        return {
            "age": self.age,
            "rotated": sorted(n for n, a in self.spins.items() if n in present and abs(a) >= 15),
            "displaced": sorted(n for n in self.shifts if n in present),
            "diastema_mm": round(sum(self.widths.get(n, 0.0) for n in (11, 21)), 2),
            "partly_erupted": sorted(n for n in self.erupting if n in present),
            "retained_roots": sorted(n for n in self.retained if n in present),
            "resorbed_roots": sorted(n for n in self.resorbed if n in present),
            "open_apices": sorted(p.fdi for p in natural if p.shape.open_apex),
            "edentulous": self.edentulous,
            "root_counts": {str(p.fdi): p.shape.root_count for p in sorted(natural, key=lambda p: p.fdi)},
        }


def _sink(plan: ToothPlan, depth: float) -> None:
    plan.centre = plan.centre + np.array([0, 0, 1.0 if plan.upper else -1.0]) * depth


def _palatal(plan: ToothPlan) -> np.ndarray:
    inward = -np.array([plan.centre[0], plan.centre[1] + 20.0, 0.0])  # towards the middle of the palate
    return inward / max(np.linalg.norm(inward), 1e-6)


def _present(n: int, missing: dict[int, str]) -> bool:
    return n not in missing


def draw_events(rng: np.random.Generator, missing: dict[int, str], restored: dict[int, str], options: dict) -> Events:
    """Draw this mouth's events; adds bridges and edentulous stretches to ``missing`` and the abutment
    crowns and wide restorations to ``restored`` (both changed in place)."""
    ev = Events()
    for q in QUADRANTS:
        for t in range(1, 9):
            n = 10 * q + t
            if t <= 5 and rng.random() < 0.05:  # a rotated incisor, canine or premolar
                ev.spins[n] = float(rng.choice([-1, 1]) * rng.uniform(15, 45))
            if t == 8 and rng.random() < 0.25:
                ev.erupting[n] = float(rng.uniform(0.3, 0.8))
    for quads in ((1, 2), (3, 4)):
        if rng.random() < 0.2:  # crowded incisors: one tucked lingually, overlapping its neighbours
            n = 10 * int(rng.choice(quads)) + int(rng.choice([1, 2]))
            ev.shifts[n] = float(-rng.uniform(1.5, 3.0))
            ev.widths[n] = float(-rng.uniform(1.0, 2.2))
        if rng.random() < 0.12:  # a midline diastema
            gap = float(rng.uniform(1.0, 3.0))
            for q in quads:
                ev.widths[10 * q + 1] = ev.widths.get(10 * q + 1, 0.0) + gap / 2
    if rng.random() < 0.06:  # generalised spacing
        extra = float(rng.uniform(0.3, 1.0))
        for q in QUADRANTS:
            for t in range(1, 6):
                ev.widths[10 * q + t] = ev.widths.get(10 * q + t, 0.0) + extra
    for n in (13, 23):
        if rng.random() < 0.03 and _present(n, missing):
            ev.impacted_canines.append(n)
    ev.age = str(rng.choice(["young", "adult", "old"], p=[0.08, 0.72, 0.2]))
    _roots_events(rng, ev, missing, restored)
    if options.get("missing", True):
        _gaps(rng, ev, missing, restored, metal=options.get("metal", True))
    for n, kind in list(restored.items()):
        if kind in ("filling", "rct") and rng.random() < 0.4:
            restored[n] = "wide" if kind == "filling" else "rct_wide"
    return ev


def _roots_events(rng, ev: Events, missing: dict[int, str], restored: dict[int, str]) -> None:
    if rng.random() < 0.06:  # a retained root: the crown decayed or broke off
        candidates = [10 * q + t for q in QUADRANTS for t in (4, 5, 6, 7) if _present(10 * q + t, missing)]
        candidates = [n for n in candidates if n not in restored]
        if candidates:
            ev.retained[int(rng.choice(candidates))] = float(rng.uniform(-1.0, 1.0))
    if rng.random() < 0.05:  # apical resorption of the upper incisors (after orthodontics)
        for n in (11, 12, 21, 22):
            ev.resorbed[n] = float(rng.uniform(0.2, 0.45))


def _gaps(rng, ev: Events, missing: dict[int, str], restored: dict[int, str], metal: bool) -> None:
    """Bridges over single gaps and edentulous stretches (space kept)."""
    if rng.random() < 0.06:
        q, start = int(rng.choice(QUADRANTS)), int(rng.integers(4, 6))
        ev.edentulous = [10 * q + t for t in range(start, start + 3)]
        for n in ev.edentulous:
            missing[n] = "gap"
            restored.pop(n, None)
    if not metal:
        return
    gaps = [n for n, kind in missing.items() if kind == "gap" and n not in ev.edentulous and 3 <= n % 10 <= 7]
    if rng.random() < 0.12:
        n = 10 * int(rng.choice(QUADRANTS)) + int(rng.choice([4, 5, 6]))
        gaps.append(n)
    for n in gaps:
        abutments = (n - 1, n + 1)
        if not all(_present(a, missing) for a in abutments):
            continue
        if n in missing and rng.random() < 0.6:  # most existing gaps stay open
            continue
        missing[n] = "pontic"
        restored.pop(n, None)
        for a in abutments:
            restored[a] = "crown"
