"""Pieces of a numbered tooth left without a number: they join the tooth they belong to.

After numbering, an instance without a free FDI number is usually a whole object (a supernumerary or
retained tooth, an implant) and stays an unnumbered tooth. But a piece of a multi-rooted or broad tooth
that the type boundary parted from it (the palatal cusp and root of an upper molar voted the next type)
is not a tooth: it lies *beside* its tooth across the arch, at the same place along it, where no second
tooth of that jaw can be (or it is one half of a molar that voted the next molar's type). Such a piece
joins the numbered tooth when it touches it broadly, lies within ``SAME_PLACE`` x the tooth's typical width
of it along the arch, and either is clearly the smaller of the two or, together with it, is no bigger than
a whole tooth of that jaw (``WHOLE_TOOTH`` x the largest other numbered one) or no wider along the arch than one
tooth of that number (``ONE_TOOTH_SPAN``): a crown cut from its roots, or one half of a molar, can be the larger
part.

A piece can also take a number of its own: a crown parted from its roots in a single arch (no second jaw to
set the layers apart) gets one number and its roots the next, and every tooth behind them moves up one.
Two numbered instances of one jaw that touch, lie at the same place along the arch (``STACK_PLACE``) and on
top of each other (``merge.STACKED_SLOPE``), and together are no bigger than a whole tooth, are one tooth:
the root-ward one joins the crown (:func:`join_stacked`). So are two numbered parts of a premolar or molar
side by side (buccal and palatal, a corner, a cusp) that lie closer still along the arch (``SIDE_PLACE``: no two
different premolars or molars lie so close) and touch over a broad face (``SIDE_SHARE``) or deep inside the tooth
(``SIDE_SADDLE_MM``), and its two halves cut mesio-distally (about half its width apart) that touch over a broad
face and deep inside it; not incisors or canines, which crowding can overlap at one place. A child's
developing tooth beneath its predecessor is stacked too, so in scans with primary or developing teeth only two
parts side by side at one place join (:func:`_child_halves`: a forming molar's crown, a shell of cusps, parted in
two; a primary molar's corner).

A piece still without a number that touches nothing it belongs to may be a root parted from its numbered tooth
by a thin dark gap that the merges left (:func:`join_parted_roots`): once the numbering has given every forming
tooth its place, a leftover that continues a numbered tooth's axis on its apical side, across at most
``roots.ROOT_GAP_MM``, and is smaller and thinner than it, is that tooth's root. Before the numbering, the merges'
thinness test (``roots.ROOT_THINNER``) must also keep germs and small primary incisors apart from the teeth
beside them; a primary canine's root, 0.7-0.8 x as deep as its short crown, failed it. Likewise a forming tooth
that touches an erupted primary-numbered crown and continues its axis, smaller and thinner: an erupting permanent
incisor cut at its neck, whose root the mixed numbering took for its successor forming beneath it and whose crown
for the primary predecessor (31 -> 71 in three of 41 dev children). A successor lies in its own crypt: on those
children no germ touched a primary-numbered crown while thinner than it (the one that touched was 1.02 x as deep),
and the germs that touch an erupted permanent crown on its axis (a lateral incisor's beside the central) stay.
"""

from __future__ import annotations

import numpy as np

from TeethSegmentationLib.fdi import is_primary
from TeethSegmentationLib.instances import fused, numbering
from TeethSegmentationLib.instances.foreground import SparseForeground
from TeethSegmentationLib.instances.merge import STACKED_SLOPE, adjacency
from TeethSegmentationLib.instances.numbering import Assignment
from TeethSegmentationLib.instances.occlusal import OcclusalPlane
from TeethSegmentationLib.instances.regions import label_sums, region_peaks
from TeethSegmentationLib.instances.roots import gap_steps, nearest_crown, neighbours_within, root_of

# A piece bigger than PIECE_SHARE and WHOLE_TOOTH allow still joins a tooth it spans no more than this x one
# tooth's width with (_SpanTest): set between one tooth (1.0) and two side by side (wide_ratio 1.6).
ONE_TOOTH_SPAN = 1.3
# Along-arch offset, x the typical width there, within which two instances are one tooth: a buccal or palatal
# piece lies at ~0 offset, one half of a molar cut mesio-distally at ~0.5, the next whole tooth at ~1.
SAME_PLACE = 0.6
PIECE_SHARE = 0.6  # the piece holds at most this share of the tooth's voxels
CONTACT_SHARE = 0.02  # and touches it with at least this share of its voxels as contact faces
WHOLE_TOOTH = 1.25  # or tooth + piece hold at most this x the largest other numbered tooth of the jaw (a second
# molar can be 10-20 % larger than the first; 1.1 left a lower second molar's crown apart from its roots)
STACK_PLACE = 0.5  # a crown and its parted roots: ~0.1-0.25 x the width apart along the arch; neighbours ~0.7-1
# A premolar or molar cut into numbered parts beside each other (buccal and palatal, a corner, a cusp): its parts
# lie at most this x the width apart along the arch and touch over a broad face or deep inside the tooth. The place
# is what keeps neighbours apart: on 38 dev scans (1,332 pairs of touching numbered teeth) two different premolars
# or molars lay >= 0.58 x apart, though their contacts reached 3.6 mm deep or 25 % of the smaller one's voxels (on
# the 64 adult dev scans of 2026-12-05: >= 0.61 x apart). Within it, the contact must still look like one tooth's:
# the four pairs of one tooth's parts within this distance on those 64 scans touched over 20-43 % of the smaller or
# 2.3-3.4 mm deep, each reaching at least one of the two (a cusp's face is not deep, a palatal half's need not be
# broad), so either is asked, not both (both were until 2026-12-05). Halves cut mesio-distally lie about half the
# width apart, up to STACK_PLACE: there both are asked (dev jaws 40051's 44: 0.46 x apart, a 30 % face, 3.0 mm
# deep; touching different premolars or molars on the 64 adult dev scans lay >= 0.61 x apart, and those within
# 0.7 x touched over <= 6 % and <= 1.5 mm deep).
SIDE_PLACE = 0.35
SIDE_SHARE = 0.25
SIDE_SADDLE_MM = 2.5
# A leftover piece joins a numbered tooth's crown only when at most this x as deep (its deepest point inside the
# foreground): a germ left without a number is as thick as its predecessor's crown or thicker (dev children's
# forming canines and premolars 1.0-1.5 x the primary crown above them), a primary canine's parted root 0.7-0.8 x.
PARTED_THINNER = 0.9


def join_pieces(
    labels: np.ndarray, sparse: SparseForeground, assignment: Assignment, ras: np.ndarray
) -> tuple[np.ndarray, bool]:
    """Compact labels with unnumbered pieces joined to their numbered tooth; whether any joined. ``ras``: the
    compact voxels' positions (mm).

    Chains join too: a piece that touches only another piece (a premolar in three) follows it once that
    one has joined its tooth, so the contacts are passed over until nothing more joins."""
    unnumbered = set((np.flatnonzero(assignment.fdi == 0) + 1).tolist())
    if not unnumbered:
        return labels, False
    size = np.bincount(labels)
    owner = np.arange(len(size))  # each region's tooth after the joins so far
    contacts = sorted(adjacency(labels, sparse).items(), key=lambda e: -e[1][0])
    span_test = _SpanTest(owner, labels, ras, assignment)
    passing = True
    while passing:
        passing = False
        for (a, b), (faces, _saddle) in contacts:
            for piece, tooth in ((owner[a], owner[b]), (owner[b], owner[a])):
                if piece in unnumbered and piece != tooth and _belongs(
                    piece, tooth, size, faces, assignment, span_test
                ):
                    owner[owner == piece] = tooth
                    size[tooth] += size[piece]
                    size[piece] = 0
                    unnumbered.discard(piece)
                    passing = True
                    break
    joined = len(unnumbered) < int(np.sum(assignment.fdi == 0))
    return (_compact(labels, owner) if joined else labels), joined


def join_parted_roots(
    labels: np.ndarray, sparse: SparseForeground, ras: np.ndarray, spacing: np.ndarray, assignment: Assignment
) -> tuple[np.ndarray, bool]:
    """Compact labels with each unnumbered piece that is a root parted from a numbered tooth of its jaw, and each
    forming tooth that is an erupted primary-numbered crown's own root (module docstring), joined to that tooth;
    whether any joined. ``ras``: the compact voxels' positions (mm)."""
    fdi = np.asarray(assignment.fdi)
    count = len(fdi) + 1
    size = np.bincount(labels, minlength=count).astype(np.float64)
    loose = [r for r in np.argsort(size, kind="stable") if r > 0 and size[r] and not fdi[r - 1]]
    forming = _forming(fdi, size, assignment)
    if not loose and not forming:
        return labels, False
    centroid = label_sums(labels, ras, count) / np.maximum(size, 1)[:, None]
    peak = region_peaks(labels, sparse.dist)
    side = np.r_[0.0, np.where(assignment.upper, 1.0, -1.0)]  # upper roots point up, along the normal
    jaws = OcclusalPlane(assignment.normal, assignment.plane_offset, True)  # each tooth's jaw is known

    def continues(r: int, c: int) -> bool:
        return root_of(r, c, size, centroid, peak, side, jaws, PARTED_THINNER)

    steps = gap_steps(spacing)
    owner = np.arange(count)
    for r in loose:
        near = neighbours_within(labels, sparse, r, steps)
        crowns = [c for c in near if c and fdi[c - 1] and continues(r, c)]
        best = nearest_crown(r, crowns, near, centroid, assignment.normal)
        if best is not None:
            owner[r] = best
    for r in forming:
        touching = neighbours_within(labels, sparse, r, 1)
        crowns = [c for c in touching if c and _erupted_primary(c, assignment) and continues(r, c)]
        if len(crowns) == 1:
            owner[r] = crowns[0]
    joined = bool((owner != np.arange(count)).any())
    return (_compact(labels, owner) if joined else labels), joined


def _forming(fdi: np.ndarray, size: np.ndarray, assignment: Assignment) -> list[int]:
    """Regions numbered as forming permanent teeth (a child's scan only)."""
    if assignment.developing is None:
        return []
    return [r for r in range(1, len(fdi) + 1) if size[r] and fdi[r - 1] and assignment.developing[r - 1]
            and not is_primary(int(fdi[r - 1]))]


def _erupted_primary(c: int, assignment: Assignment) -> bool:
    return is_primary(int(assignment.fdi[c - 1])) and not assignment.developing[c - 1]


def _belongs(
    piece: int, tooth: int, size: np.ndarray, faces: int, assignment: Assignment, span_test: _SpanTest
) -> bool:
    p, t = piece - 1, tooth - 1
    fdi = int(assignment.fdi[t])
    if not fdi or size[piece] == 0 or assignment.upper[p] != assignment.upper[t]:
        return False
    if faces < CONTACT_SHARE * size[piece]:
        return False
    position = assignment.arch_position_mm
    width = numbering.expected_width_mm(np.array([position[t]]), bool(assignment.upper[t]))[0]
    whole = size[piece] + size[tooth] <= WHOLE_TOOTH * _largest([t], size, assignment)
    if size[piece] > PIECE_SHARE * size[tooth] and not whole:
        if not span_test.one_tooth_wide(piece, tooth):
            return False
        # One half of a tooth: its place along the arch says little of the tooth's width, its number does (the
        # typical width unscaled, as expected_width_mm is for the other pieces).
        width = span_test.typical_width(tooth)
    return abs(position[p] - position[t]) <= SAME_PLACE * width


class _SpanTest:
    """Whether a piece and a numbered tooth together span no more of the arch than one tooth of that number
    (``ONE_TOOTH_SPAN`` x its typical width, scaled by the jaw's median ratio of span to typical width): a molar
    cut mesio-distally in two halves of one type, the second half left without a number, is bigger than any
    other tooth of a jaw without its twin molar, but only as wide as one molar (dev jaws 40086: 36's distal half,
    1.03 x). Two teeth side by side span 1.6 x or more (``InstanceOptions.wide_ratio``: fused teeth). A piece
    end to end with the tooth along the arch is kept near enough by the place test too; the span also keeps out a
    long piece whose centroid lies at the tooth's place. Adults' scans only: a child's forming tooth beneath its
    primary predecessor spans no more than it, and primary teeth have other widths. The jaws' ratios are worked
    out at the first question; ``owner`` (each region's tooth after the joins so far) is read at each question."""

    def __init__(self, owner: np.ndarray, labels: np.ndarray, ras: np.ndarray, assignment: Assignment) -> None:
        self.owner, self.labels, self.ras, self.assignment = owner, labels, ras, assignment
        self._ratio: dict[bool, float] | None = None

    def typical_width(self, tooth: int) -> float:
        """The typical mesio-distal width (mm) of the permanent type that numbered tooth ``tooth`` has."""
        upper = bool(self.assignment.upper[tooth - 1])
        return float(numbering.type_centres_mm(upper)[0][int(self.assignment.fdi[tooth - 1]) % 10 - 1])

    def one_tooth_wide(self, piece: int, tooth: int) -> bool:
        """Whether ``piece`` and ``tooth`` (instance ids) together are no wider along the arch than that tooth."""
        if self.assignment.developing is not None or is_primary(int(self.assignment.fdi[tooth - 1])):
            return False  # a child's scan, or a retained primary tooth: other widths
        upper = bool(self.assignment.upper[tooth - 1])
        fit = self.assignment.fits.get(upper)
        ratio = self._ratios().get(upper)
        if fit is None or ratio is None:
            return False
        both = np.flatnonzero(np.isin(self.owner, (piece, tooth))[self.labels])
        return fused.arch_span(both, self.ras, fit) <= ONE_TOOTH_SPAN * ratio * self.typical_width(tooth)

    def _ratios(self) -> dict[bool, float]:
        if self._ratio is None:
            self._ratio = {}
            fdi = np.asarray(self.assignment.fdi)
            voxels = fused.instance_voxels(self.labels)
            for upper, fit in self.assignment.fits.items():
                teeth = [t for t in np.flatnonzero((self.assignment.upper == upper) & (fdi > 0)) if len(voxels[t])]
                if len(teeth) < 4 or not fit.fitted:
                    continue
                spans = np.array([fused.arch_span(voxels[t], self.ras, fit) for t in teeth])
                typical = np.array([self.typical_width(t + 1) for t in teeth])
                self._ratio[bool(upper)] = fused.jaw_span_ratio(spans, typical)
        return self._ratio


def _largest(teeth: list[int], size: np.ndarray, assignment: Assignment) -> int:
    """Voxels of the largest numbered tooth of the jaw of ``teeth`` (instance indices) other than them (0 when
    there is none)."""
    others = (assignment.fdi > 0) & (assignment.upper == assignment.upper[teeth[0]])
    others[teeth] = False
    return int(size[1:][others].max()) if others.any() else 0


def _compact(labels: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Labels after the joins (``owner``: each region's tooth), numbered 1..n again. Voxels labelled 0 (lone
    fragments the merges dropped: with an adult's min_tooth_mm3 above min_speck_mm3 there can be some) stay 0."""
    values, compact = np.unique(owner[labels], return_inverse=True)
    return (compact + (values[0] > 0)).astype(labels.dtype)


def join_stacked(
    labels: np.ndarray, sparse: SparseForeground, ras: np.ndarray, assignment: Assignment
) -> tuple[np.ndarray, bool]:
    """Compact labels with each numbered piece stacked on a numbered tooth of its jaw joined to it (module
    docstring); whether any joined. ``ras``: the compact voxels' positions (mm)."""
    fdi = assignment.fdi
    child = bool((fdi > 50).any() or (assignment.developing is not None and assignment.developing.any()))
    if child and assignment.developing is None:
        return labels, False  # a retained primary tooth in a scan numbered as an adult's: no child's layers
    joins = _child_halves if child else _one_tooth
    count = len(fdi) + 1
    size = np.bincount(labels, minlength=count).astype(np.float64)
    position = label_sums(labels, ras, count)  # each group's sum of voxel positions
    owner = np.arange(count)
    joined = False
    for (a, b), (faces, saddle) in sorted(adjacency(labels, sparse).items(), key=lambda e: -e[1][0]):
        a, b = int(owner[a]), int(owner[b])
        if a == b or not joins(a, b, faces, saddle, size, position, assignment):
            continue
        crown, piece = _crown_first(a, b, position / np.maximum(size, 1)[:, None], assignment)
        owner[owner == piece] = crown
        size[crown], position[crown] = size[crown] + size[piece], position[crown] + position[piece]
        size[piece], position[piece] = 0, 0
        joined = True
    return (_compact(labels, owner) if joined else labels), joined


def _one_tooth(
    a: int, b: int, faces: int, saddle: float, size: np.ndarray, position: np.ndarray, assignment: Assignment
) -> bool:
    """Numbered instances ``a`` and ``b`` are parts of one tooth: stacked, or side by side or halves of a premolar or
    molar."""
    if not _parts_of_a_tooth(a, b, faces, size, assignment):
        return False
    i, j = a - 1, b - 1
    apart = _places_apart(i, j, assignment)
    if apart > STACK_PLACE:
        return False
    posterior = min(assignment.fdi[i] % 10, assignment.fdi[j] % 10) >= 4
    broad, deep = faces >= SIDE_SHARE * min(size[a], size[b]), saddle >= SIDE_SADDLE_MM
    if posterior and ((apart <= SIDE_PLACE and (broad or deep)) or (broad and deep)):
        return True
    offset = position[a] / size[a] - position[b] / size[b]
    along = float(offset @ assignment.normal)
    return STACKED_SLOPE * abs(along) > float(np.linalg.norm(offset - along * assignment.normal))


def _child_halves(
    a: int, b: int, faces: int, saddle: float, size: np.ndarray, position: np.ndarray, assignment: Assignment
) -> bool:
    """In a child's scan: numbered instances ``a`` and ``b`` are two parts of one tooth when both are developing
    (a forming crown is a shell of cusps that the watershed can part) or both erupted premolars or molars (a
    primary molar's corner), and they touch, together are no bigger than a whole tooth, and lie at one place
    along the arch (``SIDE_PLACE``). Stacked pairs are not joined there: a developing tooth lies beneath its
    predecessor, and neither are incisors, which crowding overlaps. Up to ``SAME_PLACE`` apart join two erupted
    parts that touch over a broad face (``SIDE_SHARE``: a primary second molar is about 1.4 x as wide as the
    premolar whose place it holds, the typical widths, so its distal corner lies further from it in places), and
    two developing premolar or molar parts (a forming crown parted mesio-distally in halves, each about a
    quarter of its width from its centre: 0.36-0.43 x apart in dev children, whose forming back teeth in their
    own crypts never touched one another)."""
    developing = assignment.developing
    i, j = a - 1, b - 1
    back = min(assignment.fdi[i] % 10, assignment.fdi[j] % 10) >= 4
    if developing[i] != developing[j] or not (developing[i] or back):
        return False
    if not _parts_of_a_tooth(a, b, faces, size, assignment):
        return False
    apart = _places_apart(i, j, assignment)
    broad = not developing[i] and faces >= SIDE_SHARE * min(size[a], size[b])
    shell = developing[i] and back
    return apart <= SIDE_PLACE or ((broad or shell) and apart <= SAME_PLACE)


def _places_apart(i: int, j: int, assignment: Assignment) -> float:
    """How far apart instances i and j lie along the arch, in typical crown widths at their place."""
    arch = assignment.arch_position_mm
    width = numbering.expected_width_mm(np.array([0.5 * (arch[i] + arch[j])]), bool(assignment.upper[i]))[0]
    return float(abs(arch[i] - arch[j]) / width)


def _parts_of_a_tooth(a: int, b: int, faces: int, size: np.ndarray, assignment: Assignment) -> bool:
    """Both numbered, one jaw, touching, and together no bigger than a whole tooth of that jaw."""
    i, j = a - 1, b - 1
    if not assignment.fdi[i] or not assignment.fdi[j] or assignment.upper[i] != assignment.upper[j]:
        return False
    if faces < CONTACT_SHARE * min(size[a], size[b]):
        return False
    return bool(size[a] + size[b] <= WHOLE_TOOTH * _largest([i, j], size, assignment))


def _crown_first(a: int, b: int, centroid: np.ndarray, assignment: Assignment) -> tuple[int, int]:
    """(crown, root-ward piece): the crown lies nearer the occlusal plane (below its jaw's roots when upper)."""
    below = float((centroid[a] - centroid[b]) @ assignment.normal) < 0
    return (a, b) if below == bool(assignment.upper[a - 1]) else (b, a)
