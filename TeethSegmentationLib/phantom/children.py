"""Children's mouths, about 6 to 14 years: primary teeth with resorbing roots, erupted permanent incisors and
first molars, and permanent teeth forming in their crypts at the stage the age gives.

Sources:
- Primary tooth sizes: Nelson SJ, Ash MM. *Wheeler's Dental Anatomy, Physiology and Occlusion*, 9th ed.,
  Saunders 2010, ch. 3, table "Measurements of the deciduous teeth" (after G. V. Black): crown and root
  length, mesio-distal and bucco-lingual crown and cervical diameters. Their enamel is about half as thick
  as the permanent teeth's, their pulps are large, their roots thin (molar roots flared over the successor).
- Chronology: Logan WHG, Kronfeld R, *J Am Dent Assoc* 20 (1933) 379-427, as modified by McCall and Schour
  (Wheeler ch. 2, "Chronology of the human dentition"): first evidence of calcification, crown completed,
  eruption, root completed, per permanent tooth and jaw; the mid-points of the ranges are used. A primary
  tooth is shed when its successor erupts; its root resorbs over the last 3 years before.
- A root is about two-thirds formed when its tooth erupts (the same chronology: eruption to root completion).

Each tooth's dates vary by ``TIMING_SD_YEARS`` (and both sides alike, as they do). Labels: a primary tooth
gets its primary FDI number (51-85), a developing permanent tooth its permanent number.
"""

from __future__ import annotations

import numpy as np

from TeethSegmentationLib.phantom.anatomy import WHEELER, tooth_shape
from TeethSegmentationLib.phantom.dentition import PLACEMENT, Dentition, ToothPlan, _plan_tooth, make_arch
from TeethSegmentationLib.phantom.family import Family
from TeethSegmentationLib.phantom.variation import Events

AGES = (5.0, 15.0)  # the ages these tables describe well (mixed dentition and just before and after)
TIMING_SD_YEARS = 0.5
RESORPTION_YEARS = 3.0
ROOT_AT_ERUPTION = 2.0 / 3.0

# Permanent teeth, types 1..8: (calcification begins, crown completed, eruption, root completed), years.
CHRONOLOGY = {
    True: (
        (0.3, 4.5, 7.5, 10.0),
        (0.9, 5.0, 8.5, 11.0),
        (0.4, 6.5, 11.5, 14.0),
        (1.6, 5.5, 10.5, 12.5),
        (2.1, 6.5, 11.0, 13.5),
        (0.0, 2.75, 6.5, 9.5),
        (2.75, 7.5, 12.5, 15.0),
        (8.0, 14.0, 19.0, 21.5),
    ),
    False: (
        (0.3, 4.0, 6.5, 9.0),
        (0.3, 4.0, 7.5, 10.0),
        (0.4, 6.5, 10.0, 13.0),
        (1.9, 6.0, 11.0, 13.5),
        (2.4, 7.0, 11.5, 14.0),
        (0.0, 2.75, 6.5, 9.5),
        (2.75, 7.5, 12.0, 14.5),
        (9.0, 14.0, 19.0, 21.5),
    ),
}

# Primary teeth, types 1..5 (Wheeler after Black, mm): crown length, root length, crown MD, cervix MD,
# crown BL, cervix BL.
PRIMARY_SIZES = {
    True: {
        "crown": (6.0, 5.6, 6.5, 5.1, 5.7),
        "root": (10.0, 11.4, 13.5, 10.0, 11.7),
        "md": (6.5, 5.1, 7.0, 7.3, 8.2),
        "md_cervix": (4.5, 3.7, 5.1, 5.2, 6.4),
        "bl": (5.0, 4.0, 7.0, 8.5, 10.0),
        "bl_cervix": (4.0, 3.7, 5.5, 6.9, 8.3),
    },
    False: {
        "crown": (5.0, 5.2, 6.0, 6.0, 5.5),
        "root": (9.0, 10.0, 11.5, 9.8, 10.0),
        "md": (4.2, 4.1, 5.0, 7.7, 9.9),
        "md_cervix": (3.0, 3.0, 3.7, 6.5, 7.2),
        "bl": (4.0, 4.0, 4.8, 7.0, 8.7),
        "bl_cervix": (3.5, 3.5, 4.0, 5.3, 6.4),
    },
}
# The permanent type whose outline and roots a primary one borrows: the first primary molar is premolar-like
# with molar roots (the second molar's shape), the second primary molar resembles the first permanent molar.
PRIMARY_LIKE = {1: 1, 2: 2, 3: 3, 4: 7, 5: 6}
PRIMARY_ENAMEL = 0.5
PRIMARY_PULP = 1.5
# Developing teeth: bone over the crown (mm) when eruption is ``FAR_YEARS`` or more away, and just before it.
COVER_FAR_MM, COVER_NEAR_MM, FAR_YEARS = 7.0, 1.0, 4.0
# A molar this close to its eruption is breaking through (partly erupted, listed "erupting"); one still in
# its crypt has its crown tip at least CRYPT_MM deep, clear of the 4 mm by which the engine and the metrics
# call a tooth developing.
ERUPTING_YEARS, CRYPT_MM = 0.75, 6.0
CRYPT_GAP_MM = 1.5  # bone between a molar crypt and the tooth in front of it


def check_age(age: float) -> float:
    from TeethSegmentationLib.errors import InputError

    if not AGES[0] <= float(age) <= AGES[1]:
        raise InputError(f"A mixed-dentition phantom's age must be {AGES[0]:g} to {AGES[1]:g} years, not {age}.")
    return float(age)


def _timeline(rng: np.random.Generator) -> dict[tuple[bool, int], np.ndarray]:
    """This child's dates per (jaw, type): the tables' mid-points shifted by one common and one own offset."""
    common = rng.normal(0, TIMING_SD_YEARS)
    return {
        (upper, t): np.array(CHRONOLOGY[upper][t - 1]) + common + rng.normal(0, TIMING_SD_YEARS / 2)
        for upper in (True, False)
        for t in range(1, 9)
    }


def stage(dates: np.ndarray, age: float) -> dict:
    """Where a permanent tooth is at ``age``: 'absent', 'forming' (crown fraction, root fraction, years to
    eruption) or 'erupted' (root fraction)."""
    begin, crown_done, erupt, root_done = dates
    if age < begin + 0.5:
        return {"state": "absent"}
    crown = float(np.clip((age - begin) / (crown_done - begin), 0.2, 1.0))
    if age < erupt:
        root = ROOT_AT_ERUPTION * float(np.clip((age - crown_done) / (erupt - crown_done), 0, 1))
        return {"state": "forming", "crown": crown, "root": root, "years": float(erupt - age)}
    grown = float(np.clip((age - erupt) / (root_done - erupt), 0, 1))
    return {"state": "erupted", "crown": 1.0, "root": ROOT_AT_ERUPTION + (1 - ROOT_AT_ERUPTION) * grown}


def primary_shape(upper: bool, t: int, size: float, fam: Family, rng: np.random.Generator):
    """A primary tooth: its permanent look-alike's outline, roots and cusps at Wheeler's primary sizes."""
    shape = tooth_shape(upper, PRIMARY_LIKE[t], size, fam, rng)
    table = PRIMARY_SIZES[upper]
    for key in ("md", "md_cervix", "bl", "bl_cervix", "crown", "root"):
        setattr(shape, key, table[key][t - 1] * size * float(rng.uniform(0.97, 1.03)))
    shape.md_cervix, shape.bl_cervix = min(shape.md_cervix, 0.92 * shape.md), min(shape.bl_cervix, 0.95 * shape.bl)
    shape.trunk = min(shape.trunk, 1.5)  # primary molars: roots part right under the crown
    shape.enamel_side *= PRIMARY_ENAMEL
    shape.enamel_top *= PRIMARY_ENAMEL
    shape.pulp = PRIMARY_PULP
    return shape


def _forming(shape, crown: float, root: float) -> None:
    """A tooth still forming: the crown grows from the cusps down, then the root, with a wide open apex."""
    if crown < 1.0:
        shape.extra["formed_from_mm"] = round((1.0 - crown) * shape.crown, 3)
    shape.root = max(root * shape.root, 0.05)
    shape.trunk = min(shape.trunk, shape.root)
    shape.open_apex = True
    shape.pulp = max(shape.pulp, 1.6)


def _sink(plan: ToothPlan, depth: float) -> None:
    plan.centre = plan.centre + np.array([0.0, 0.0, 1.0 if plan.upper else -1.0]) * depth


def _towards_middle(plan: ToothPlan, mm: float) -> None:
    """Permanent incisors and canines form lingual to their predecessors' roots."""
    inward = -np.array([plan.centre[0], plan.centre[1] + 20.0, 0.0])
    plan.centre = plan.centre + inward / max(np.linalg.norm(inward), 1e-6) * mm


def plan_mixed(rng: np.random.Generator, options: dict, fam: Family) -> Dentition:
    """Both arches of a child of ``options['age']`` years with every tooth's plan (primary, erupted, forming)."""
    age = check_age(options["age"])
    dates = _timeline(rng)
    scale = rng.uniform(0.94, 1.06)
    bite_gap = float(options.get("bite_gap", rng.choice([rng.uniform(-0.3, 0.2), rng.uniform(1.0, 4.0)])))
    exponent, aspect, spee = rng.uniform(1.7, 2.6), rng.uniform(1.3, 1.7), rng.uniform(0.0, 1.0)
    events = Events(age="young")
    teeth: list[ToothPlan] = []
    forming: list[ToothPlan] = []
    cej, arches = {}, {}
    for upper in (True, False):
        stages = {t: stage(dates[(upper, t)], age) for t in range(1, 9)}
        layer = _occlusal_layer(rng, upper, stages, scale, fam)
        length = sum(width for _t, width, _shape, _primary in layer)
        arch = make_arch(
            upper,
            length + 0.5,
            exponent,
            aspect * (1.0 if upper else 0.92),
            0.0 if upper else -3.0,
            0.25,
            fam.arch_form,
        )
        arches[upper] = arch
        samples = []
        for side in (1, -1):
            quad = (1 if side > 0 else 2) if upper else (4 if side > 0 else 3)
            s, places = 0.0, {}
            for t, width, shape, primary in layer:
                places[t] = s + width / 2
                s += width
                fdi = 10 * (quad + (4 if primary else 0)) + t
                plan = _plan_tooth(
                    rng, fdi, side * places[t], arch, PLACEMENT[upper], _copy(shape), bite_gap, spee, events
                )
                samples.append((side * places[t], plan.centre[2]))
                teeth.append(plan)
            for t in range(1, 9):
                st = stages[t]
                if st["state"] != "forming":
                    continue
                if t not in places:  # behind the last erupted molar, bone between the crypts
                    s += CRYPT_GAP_MM
                    places[t] = s + 0.5 * WHEELER[upper]["md"][t - 1] * scale
                    s += WHEELER[upper]["md"][t - 1] * scale
                forming.append(_forming_plan(rng, 10 * quad + t, side * places[t], arch, st, scale, fam, bite_gap))
        samples.sort()
        cej[upper] = (np.array([p[0] for p in samples]), np.array([p[1] for p in samples]))
    info = {
        "dentition": "mixed",
        "age": round(age, 2),
        "primary": sorted(p.fdi for p in teeth if p.fdi // 10 >= 5),
        "developing": sorted(p.fdi for p in forming if not p.shape.extra.get("erupting")),
        "erupting": sorted(p.fdi for p in forming if p.shape.extra.get("erupting")),
        "erupted_permanent": sorted(p.fdi for p in teeth if p.fdi // 10 < 5),
        "missing": [],
        "bite_gap_mm": round(bite_gap, 2),
        "arch_form": fam.arch_form,
    }
    # Forming teeth first: a primary root drawn after them stops at their crowns, as resorption leaves it.
    return Dentition(arches[True], arches[False], forming + teeth, [], bite_gap, cej, info)


def _copy(shape):
    from dataclasses import replace

    return replace(shape, extra=dict(shape.extra))


def _occlusal_layer(rng, upper: bool, stages: dict, scale: float, fam: Family) -> list[tuple]:
    """(type, width along the arch, shape, primary?) of the teeth in occlusion, mesial to distal: a primary
    tooth at places 1-5 until its successor erupts, then the permanent one; the molars once erupted."""
    layer = []
    for t in range(1, 9):
        st = stages[t]
        if t <= 5 and st["state"] != "erupted":
            shape = primary_shape(upper, t, scale, fam, rng)
            years = st.get("years", RESORPTION_YEARS)
            lost = float(np.clip(1.0 - years / RESORPTION_YEARS, 0.0, 0.85))
            shape.root *= 1.0 - lost
            shape.extra["resorbed"] = round(lost, 2)
            shape.extra["resorbed_by_follicle"] = True
            layer.append((t, 0.97 * shape.md, shape, True))
        elif st["state"] == "erupted":
            shape = tooth_shape(upper, t, scale, fam, rng)
            if st["root"] < 1.0:
                _forming(shape, 1.0, st["root"])
            layer.append((t, 0.96 * shape.md, shape, False))
    return layer


def _forming_plan(rng, fdi: int, s: float, arch, st: dict, scale: float, fam: Family, bite_gap: float) -> ToothPlan:
    """A permanent tooth in its crypt: under its predecessor (or behind the molars), deeper the further its
    eruption, with the dark follicle around its crown (drawn for every unerupted tooth)."""
    upper, t = fdi // 10 in (1, 2), fdi % 10
    shape = tooth_shape(upper, t, scale, fam, rng)
    _forming(shape, st["crown"], st["root"])
    plan = _plan_tooth(rng, fdi, s, arch, PLACEMENT[upper], shape, bite_gap, 0.0, Events())
    plan.impacted = True  # unerupted: the follicle is drawn around the crown
    cover = COVER_NEAR_MM + (COVER_FAR_MM - COVER_NEAR_MM) * float(np.clip(st["years"] / FAR_YEARS, 0, 1))
    # Under a primary crown of about 6 mm; canines form highest, third molars deep in ramus and tuberosity.
    depth = cover + (6.0 if t <= 5 else 0.0) + (3.0 if t == 3 else 0.0) + (4.0 if t == 8 else 0.0)
    if t > 5:
        depth = max(depth, CRYPT_MM)
        if st["years"] < ERUPTING_YEARS:
            depth = 2.0 * st["years"] / ERUPTING_YEARS
            plan.impacted, shape.extra["erupting"] = False, True
    _sink(plan, depth)
    if t <= 3:
        _towards_middle(plan, 2.0)
    return plan
