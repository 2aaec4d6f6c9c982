"""Painting the simulated CT phantom: an anatomy rasterised at one slice height into HU and tissue labels.

Simulated data, not patient data. An axial slice at the level of the liver (about T11-L2) is painted in
Hounsfield units (HU) from the patient's smooth random shapes laid out in millimetres: body outline,
subcutaneous fat, abdominal wall and rectus muscles, ribs, visceral fat with mesenteric vessels, liver with
portal and hepatic veins and the gallbladder, spleen, stomach with an air-fluid level, pancreas with the splenic
vein, kidneys (cortex, medulla, sinus fat), aorta, inferior vena cava, vertebra (cortical shell, cancellous
bone, canal, posterior elements) or disc, paraspinal and psoas muscles and diaphragmatic crura, and bowel loops
with gas, fluid or faeces. Liver lesions are added by ``medgan.data.phantom.lesions``. Radiological
convention: image top is anterior, image left is the patient's right (so the liver is on the image left).

``textured`` then turns the painting into the truth that is scanned: fine tissue texture and a partial-volume
blur.

Random texture (subcutaneous septa, faecal content, tissue texture) is drawn per slice by default, from streams
keyed by the slice height: adjacent slices are then uncorrelated. A volume passes ``SliceFields``, the slice's
cut through a patient's 3D random fields (``medgan.data.phantom.fields``), so that texture continues through
the plane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medgan.data.phantom.anatomy import Anatomy, Blob, Vessel, bump, seed_key
from medgan.data.phantom.canvas import Canvas
from medgan.data.phantom.tissue import LABEL, ORGANS

# Standard deviation (HU) of the fine random texture inside each tissue label (parenchyma is not flat).
TEXTURE_HU = {
    "fat": 6.0, "muscle": 6.0, "liver": 4.0, "spleen": 4.0, "pancreas": 8.0, "kidney": 5.0, "bone-cancellous": 45.0,
    "lesion": 3.0,
}
TEXTURE_MM = 2.0  # correlation length of that texture
SKIN_MM = 2.0  # skin thickness
SEPTA_MM = 5.0  # spacing scale of the fibrous septa in subcutaneous fat
FAECES_MM = 1.5  # correlation length of the mottled faecal content (plus half a pixel)
PARTIAL_VOLUME_PIXELS = 0.6  # Gaussian blur (pixels) of the painted truth: partial volume and focal spot size


@dataclass(frozen=True)
class SliceFields:
    """One slice of a patient's smooth 3D random fields, each float32 ``[size, size]``, zero mean, unit variance.

    Attributes:
        septa: zero lines are the fibrous septa of subcutaneous fat (SEPTA_MM correlation).
        faeces: mottled faecal content; above 0.7 is gas (FAECES_MM correlation).
        texture: fine tissue texture of the CT truth, scaled per tissue by TEXTURE_HU (TEXTURE_MM correlation).
    """

    septa: np.ndarray
    faeces: np.ndarray
    texture: np.ndarray


def paint_slice(anatomy: Anatomy, z: float, size: int, fields: SliceFields | None = None) -> Canvas:
    """Paints the noise-free slice at height ``z`` (mm) of ``anatomy`` on a ``size`` x ``size`` grid (no lesions).

    ``fields``: the slice's cut through the patient's 3D random fields (septa and faeces); None draws them for
    this slice alone (the 2D sources), so they do not continue into the next slice.
    """
    canvas = Canvas(size)
    hu, frame = anatomy.tissue_hu, anatomy.frame
    body_rho = canvas.radial(frame.body)
    canvas.paint(body_rho < 1.0, "skin", hu["skin"])
    canvas.paint(body_rho < 1.0 - SKIN_MM / max(frame.body.radii), "fat", hu["fat"])
    _paint_septa(canvas, anatomy, z, None if fields is None else fields.septa)
    canvas.paint(canvas.radial(frame.wall) < 1.0, "muscle", hu["muscle"])
    cavity_rho = canvas.radial(frame.cavity)
    canvas.paint(cavity_rho < 1.0, "fat", hu["fat"])
    _paint_wall(canvas, anatomy, z)
    _paint_liver(canvas, anatomy, cavity_rho, z)
    _paint_left_upper_quadrant(canvas, anatomy, cavity_rho, z)
    _paint_retroperitoneum(canvas, anatomy, z)
    _paint_spine(canvas, anatomy, z)
    _paint_bowel(canvas, anatomy, cavity_rho, z, None if fields is None else fields.faeces)
    return canvas


def _paint_septa(canvas: Canvas, anatomy: Anatomy, z: float, field: np.ndarray | None) -> None:
    """Thin fibrous septa criss-crossing the subcutaneous fat: the zero lines of a smooth random field."""
    if field is None:
        rng = np.random.default_rng(np.random.SeedSequence([anatomy.seed, 19, *seed_key(z)]))
        field = ndimage.gaussian_filter(rng.standard_normal(canvas.hu.shape).astype(np.float32), SEPTA_MM / canvas.spacing)
        field /= field.std() + 1e-6
    fat = canvas.labels == LABEL["fat"]
    strength = np.exp(-((field / 0.07) ** 2)) * 0.5 * (anatomy.tissue_hu["muscle"] - anatomy.tissue_hu["fat"])
    canvas.hu[fat] += strength[fat]


def _paint_wall(canvas: Canvas, anatomy: Anatomy, z: float) -> None:
    """Rectus muscles anteriorly, ribs (and costal cartilage) in the lateral wall."""
    hu, frame = anatomy.tissue_hu, anatomy.frame
    wall, cavity = frame.wall, frame.cavity
    anterior = wall.centre[1] - wall.radii[1] * float(wall.boundary(-math.pi / 2))
    for side in (-1.0, 1.0):
        rectus = Blob(
            (side * 38.0, anterior + anatomy.wall_mm * 0.7), (30.0, anatomy.wall_mm * 0.8 + 2.0), angle=side * 0.12
        )
        canvas.paint((canvas.radial(rectus) < 1.0) & (canvas.radial(frame.body) < 1.0), "muscle", hu["muscle"])
    for index, (angle, size, elongation) in enumerate(anatomy.ribs):
        side = 1.0 if index % 2 else -1.0
        theta = angle + 0.003 * z  # ribs slope, so their section drifts with height
        # Points on the wall and cavity boundaries in this direction; the rib sits between them.
        direction = (side * math.sin(theta), -math.cos(theta))
        outer = _boundary_point(wall, direction)
        inner = _boundary_point(cavity, direction)
        x, y = (outer[0] + inner[0]) / 2, (outer[1] + inner[1]) / 2
        tangent = math.atan2(direction[0], -direction[1])
        cartilage = theta < 1.15
        rib = Blob((x, y), (6.5 * size * elongation, 4.5 * size), angle=tangent)
        rho = canvas.radial(rib)
        canvas.paint(rho < 1.0, "bone-cortical", hu["cartilage"] if cartilage else hu["rib-cortical"])
        if not cartilage:
            canvas.paint(rho < 0.55, "bone-cancellous", hu["rib-marrow"])


def _boundary_point(blob: Blob, direction: tuple[float, float]) -> tuple[float, float]:
    """Where a ray from the blob centre along ``direction`` leaves the (unrotated) blob."""
    u, v = direction[0] / blob.radii[0], direction[1] / blob.radii[1]
    norm = (abs(u) ** blob.power + abs(v) ** blob.power) ** (1.0 / blob.power)
    distance = float(blob.boundary(math.atan2(v, u))) / norm
    return blob.centre[0] + distance * direction[0], blob.centre[1] + distance * direction[1]


def _liver_mask(canvas: Canvas, anatomy: Anatomy, cavity_rho: np.ndarray, z: float) -> np.ndarray:
    """The liver at height ``z``: a right lobe filling the right upper quadrant, a left lobe across the midline."""
    frame, scale = anatomy.frame, anatomy.liver_scale
    right, left = bump(z, 5.0, 105.0), bump(z, 35.0, 70.0)
    cx, cy = frame.cavity.centre
    width, depth = frame.cavity.radii
    sx, sy = anatomy.liver_shift
    mask = np.zeros(canvas.hu.shape, dtype=bool)
    if right > 0.05:
        lobe = Blob(
            (cx - 0.5 * width + sx, cy + 0.05 * depth + sy),
            (0.6 * width * scale * right, 0.95 * depth * scale * math.sqrt(right)),
            wobble=anatomy.liver_wobble,
        )
        mask |= canvas.radial(lobe) < 1.0
    if left > 0.05:
        lobe = Blob(
            (cx - 0.1 * width + sx, cy - 0.5 * depth + sy),
            (0.42 * width * scale * left, 0.3 * depth * scale * left),
            angle=-0.3,
            wobble=anatomy.liver_wobble[:2],
        )
        mask |= canvas.radial(lobe) < 1.0
    # The liver reaches the wall (diaphragm) but stays off the spine, the crura and the paraspinal muscles.
    (vx, vy), (a, b) = frame.vertebra, frame.vertebra_radii
    spine = Blob((vx, vy + 20.0), (a + 22.0, b + 45.0))
    return mask & (cavity_rho < 0.985) & (canvas.radial(spine) > 1.0)


def _paint_liver(canvas: Canvas, anatomy: Anatomy, cavity_rho: np.ndarray, z: float) -> None:
    """Liver parenchyma, the gallbladder at its inferior surface, and the portal and hepatic veins inside."""
    hu, frame = anatomy.tissue_hu, anatomy.frame
    liver = _liver_mask(canvas, anatomy, cavity_rho, z)
    canvas.paint(liver, "liver", hu["liver"])
    gallbladder = bump(z, -45.0, 35.0)
    if anatomy.gallbladder and gallbladder > 0.2:
        cx, cy = frame.cavity.centre
        centre = (cx - 0.22 * frame.cavity.radii[0], cy - 0.5 * frame.cavity.radii[1])
        blob = Blob(centre, (16.0 * gallbladder + 3, 11.0 * gallbladder + 3), angle=0.6)
        canvas.paint((canvas.radial(blob) < 1.0) & liver, "gallbladder", hu["bile"])
    parenchyma = canvas.labels == LABEL["liver"]
    for vessel in anatomy.vessels:
        visible = bump(z, vessel.z_centre, vessel.z_half)
        if visible > 0.2:
            canvas.paint(canvas.tube(vessel, 0.4 + 0.6 * visible) & parenchyma, "liver-vessel", hu[vessel.kind])


def _paint_left_upper_quadrant(canvas: Canvas, anatomy: Anatomy, cavity_rho: np.ndarray, z: float) -> None:
    """Spleen against the left posterolateral wall, and the stomach with an air-fluid level."""
    hu, frame = anatomy.tissue_hu, anatomy.frame
    cx, cy = frame.cavity.centre
    width, depth = frame.cavity.radii
    spleen = bump(z, 40.0, 65.0) * anatomy.spleen_scale
    if spleen > 0.1:
        radii = (0.2 * width * spleen + 5, 0.42 * depth * spleen + 5)
        blob = Blob((cx + 0.7 * width, cy + 0.35 * depth), radii, angle=-0.5, wobble=anatomy.spleen_wobble)
        canvas.paint_organ((canvas.radial(blob) < 1.0) & (cavity_rho < 0.985), "spleen", hu["spleen"], hu["fat"])
    stomach = bump(z, 35.0, 60.0) * anatomy.stomach_scale
    if stomach > 0.1:
        centre = (cx + 0.35 * width, cy - 0.3 * depth)
        radii = (0.32 * width * stomach + 8, 0.34 * depth * stomach + 8)
        blob = Blob(centre, radii, angle=0.4, wobble=((6, 0.02, 0.0), (9, 0.015, 1.0)))
        rho = canvas.radial(blob)
        canvas.paint_organ((rho < 1.0) & (cavity_rho < 0.95), "bowel", hu["bowel-wall"], hu["fat"])
        lumen = (rho < 1.0 - 4.0 / min(radii)) & (cavity_rho < 0.92)
        canvas.paint(lumen, "bowel", hu["stomach-fluid"])
        # Gas rises to the anterior (top) side of a supine patient's stomach.
        canvas.paint(lumen & _above_level(canvas, centre, 0.35 * radii[1], anatomy.seed), "gas", hu["gas"])


def _paint_retroperitoneum(canvas: Canvas, anatomy: Anatomy, z: float) -> None:
    """Pancreas and splenic vein, kidneys, aorta and inferior vena cava."""
    hu, frame = anatomy.tissue_hu, anatomy.frame
    (vx, vy), (a, b) = frame.vertebra, frame.vertebra_radii
    pancreas = bump(z, -15.0, 30.0)
    if pancreas > 0.2:
        # Head beside the IVC, body arching over the aorta, tail reaching towards the splenic hilum.
        width = frame.cavity.radii[0]
        head, tail = (vx - 12.0, vy - b - 32.0), (vx + 0.55 * width, vy - 8.0)
        arch = (vx + 25.0, vy - b - 62.0)
        gland = Vessel((head, arch, tail), (13.0, 9.0), z, 30.0, "pancreas")
        mask = canvas.tube(gland, 0.5 + 0.5 * pancreas)
        canvas.paint_organ(mask, "pancreas", hu["pancreas"], hu["fat"])
        behind = tuple((x + 2.0, y + 11.0 * (0.5 + 0.5 * pancreas)) for x, y in (head, arch, tail))
        vein = Vessel(behind, (4.5, 3.5), z, 30.0, "portal-vein")
        canvas.paint(canvas.tube(vein, 1.0) & ~mask, "vessel", hu["portal-vein"])
    for side, z_centre in ((-1.0, anatomy.kidney_z[0]), (1.0, anatomy.kidney_z[1])):
        profile = bump(z, z_centre, 55.0)
        if profile < 0.15:
            continue
        long_axis, short_axis = anatomy.kidney_radii
        centre = (vx + side * (long_axis + 40.0), vy + 5.0)
        angle = side * 0.6
        radii = (long_axis * profile + 2, short_axis * profile + 2)
        kidney = Blob(centre, radii, angle=angle, wobble=((2, 0.04, 0.3),))
        rho = canvas.radial(kidney)
        canvas.paint_organ(rho < 1.0, "kidney", hu["kidney-cortex"], hu["fat"], gap_mm=2.5)
        # Medullary pyramids (less enhanced than cortex) and renal sinus fat at the medial hilum.
        theta = np.arctan2(canvas.y - centre[1], canvas.x - centre[0])
        canvas.paint((rho < 0.72) & (rho > 0.3) & (np.cos(6 * theta) > -0.2), "kidney", hu["kidney-medulla"])
        hilum = Blob(
            (centre[0] - side * long_axis * 0.55 * profile, centre[1] - short_axis * 0.1),
            (long_axis * 0.4 * profile, short_axis * 0.35 * profile),
            angle=angle,
        )
        canvas.paint(canvas.radial(hilum) < 1.0, "fat", hu["fat"])
    radius = frame.aorta_radius
    canvas.paint(canvas.radial(Blob(frame.aorta, (radius, radius))) < 1.0, "aorta", hu["aorta"])
    canvas.paint(canvas.radial(Blob(frame.ivc, (13.0, 9.0), angle=0.3)) < 1.0, "ivc", hu["ivc"])


def _paint_spine(canvas: Canvas, anatomy: Anatomy, z: float) -> None:
    """Vertebra or disc, posterior elements, canal, paraspinal and psoas muscles and the crura."""
    hu, frame = anatomy.tissue_hu, anatomy.frame
    (vx, vy), (cx, cy) = frame.vertebra, frame.canal
    a, b = frame.vertebra_radii
    inside_body = canvas.radial(frame.wall) < 1.0
    posterior_bone = hu["bone-cortical"] * 0.6  # thin cortex around marrow, seen at this pixel size as one value
    for side in (-1.0, 1.0):
        paraspinal = Blob((cx + side * 30.0, cy + 16.0), (22.0, 24.0), angle=side * 0.25)
        canvas.paint((canvas.radial(paraspinal) < 1.0) & inside_body, "muscle", hu["muscle"])
        psoas = bump(z, -130.0, 110.0)
        if psoas > 0.1:
            blob = Blob((vx + side * (a + 8.0 * psoas), vy + 2.0), (13.0 * psoas + 2, 11.0 * psoas + 2))
            canvas.paint(canvas.radial(blob) < 1.0, "muscle", hu["muscle"])
        crus = Blob((vx + side * a * 0.8, vy - b - 4.0), (5.0, 14.0), angle=-side * 0.45)
        canvas.paint(canvas.radial(crus) < 1.0, "muscle", hu["muscle"])
        transverse = Blob((cx + side * 19.0, cy - 3.0), (11.0, 3.0), angle=side * 0.3)
        canvas.paint(canvas.radial(transverse) < 1.0, "bone-cortical", posterior_bone)
    canvas.paint(canvas.radial(Blob((cx, cy + 1.0), (12.0, 11.0))) < 1.0, "bone-cortical", posterior_bone)
    spinous = canvas.radial(Blob((cx, cy + 20.0), (2.5, 12.0))) < 1.0
    canvas.paint(spinous & inside_body, "bone-cortical", posterior_bone)
    canvas.paint(canvas.radial(Blob((cx, cy), (8.0, 7.0))) < 1.0, "spinal-canal", hu["spinal-canal"])
    rho = canvas.radial(Blob((vx, vy), (a, b), power=2.3))
    if (z + 200.0) % 32.0 < 7.0:  # an intervertebral disc every ~32 mm: fibrocartilage, no cortical shell
        canvas.paint(rho < 1.0, "disc", hu["disc"])
        return
    canvas.paint(rho < 1.0, "bone-cortical", hu["bone-cortical"])
    canvas.paint(rho < 1.0 - 2.0 / b, "bone-cancellous", hu["bone-cancellous"])


def _paint_bowel(canvas: Canvas, anatomy: Anatomy, cavity_rho: np.ndarray, z: float, faeces: np.ndarray | None) -> None:
    """Mesenteric vessels and bowel loops, placed last into whatever visceral fat is left."""
    hu, frame = anatomy.tissue_hu, anatomy.frame
    cx, cy = frame.cavity.centre
    width, depth = frame.cavity.radii
    free = (canvas.labels == LABEL["fat"]) & (cavity_rho < 0.97)
    room = ndimage.distance_transform_edt(free) * canvas.spacing  # mm to the nearest non-fat pixel
    rng = np.random.default_rng(np.random.SeedSequence([anatomy.seed, 23, int(round(z * 10)) & 0xFFFFFFFF]))
    for loop in anatomy.loops:
        profile = bump(z, loop.z_centre, loop.z_half)
        if profile <= 0.0:
            continue
        centre = (cx + loop.where[0] * width, cy + loop.where[1] * depth)
        row, column = _pixel(canvas, centre)
        if row is None:
            continue
        # Bowel is soft: a loop squeezed between organs is narrower; with no room at all it is elsewhere.
        radius = min(loop.radius * (0.5 + 0.5 * profile), room[row, column] - 1.5)
        if radius < 6.0:
            continue
        outline = Blob(centre, (radius, radius * loop.aspect), angle=loop.angle, wobble=((3, 0.04, loop.radius),))
        rho = canvas.radial(outline)
        inside = rho < 1.0
        lumen = rho < 1.0 - 2.5 / radius
        canvas.paint(inside, "bowel", hu["bowel-wall"])
        if loop.content == "gas":
            canvas.paint(lumen, "gas", hu["gas"])
        elif loop.content == "fluid":
            canvas.paint(lumen, "bowel", hu["bowel-fluid"])
            canvas.paint(lumen & _above_level(canvas, centre, radius * 0.55, loop.angle), "gas", hu["gas"])
        else:
            _paint_faeces(canvas, lumen, rng, faeces)
        room = np.minimum(room, np.hypot(canvas.x - centre[0], canvas.y - centre[1]) - radius)
    for fx, fy, radius in anatomy.mesenteric:
        x, y = cx + fx * width, cy + fy * depth
        row, column = _pixel(canvas, (x, y))
        if row is not None and room[row, column] > radius + 1.0:
            mask = np.zeros(canvas.hu.shape, dtype=bool)
            canvas.disc(mask, x, y, radius)
            canvas.paint(mask, "vessel", hu["portal-vein"])


def _above_level(canvas: Canvas, centre: tuple[float, float], height: float, key: float) -> np.ndarray:
    """Pixels above an air-fluid level ``height`` mm above ``centre``, gently tilted.

    A perfectly horizontal gas edge lines up with one projection angle and leaves a streak along it; a real
    level is rarely exactly level with the scanner (the patient lies slightly rotated).
    """
    tilt = 0.04 + 0.05 * abs(math.sin(7.0 * key))
    sign = 1.0 if math.cos(3.0 * key) > 0 else -1.0
    return canvas.y < centre[1] - height + sign * tilt * (canvas.x - centre[0])


def _pixel(canvas: Canvas, point: tuple[float, float]) -> tuple[int | None, int | None]:
    """Row and column of the pixel containing ``point`` (mm), or (None, None) outside the image."""
    row = int(point[1] / canvas.spacing + canvas.size / 2)
    column = int(point[0] / canvas.spacing + canvas.size / 2)
    if 0 <= row < canvas.size and 0 <= column < canvas.size:
        return row, column
    return None, None


def _paint_faeces(canvas: Canvas, lumen: np.ndarray, rng: np.random.Generator, field: np.ndarray | None) -> None:
    """Mottled colonic content: soft material holding many small gas pockets (``field``: the slice's 3D field)."""
    rows, columns = np.nonzero(lumen)
    if not len(rows):
        return
    box = (slice(rows.min(), rows.max() + 1), slice(columns.min(), columns.max() + 1))
    if field is None:
        noise = rng.standard_normal(lumen[box].shape).astype(np.float32)
        noise = ndimage.gaussian_filter(noise, FAECES_MM / canvas.spacing + 0.5)
        noise /= noise.std() + 1e-6
    else:
        noise = field[box]
    values = np.full(canvas.hu.shape, 0.0, dtype=np.float32)
    values[box] = np.where(noise > 0.7, -1000.0, 25.0 + 20.0 * np.clip(noise, -2, 2))
    canvas.paint(lumen & (values > -500), "bowel", values)
    canvas.paint(lumen & (values <= -500), "gas", values)


def textured(canvas: Canvas, rng: np.random.Generator | None, texture: np.ndarray | None = None) -> np.ndarray:
    """Truth HU: the painting plus fine correlated texture inside tissues, then a partial-volume blur.

    Args:
        canvas: the painted slice.
        rng: draws this slice's own texture field when ``texture`` is None.
        texture: the slice's cut through the patient's 3D texture field (``SliceFields.texture``), or None.
    """
    if texture is None:
        if rng is None:
            raise ValueError("textured needs a random generator or a texture field")
        sigma = TEXTURE_MM / canvas.spacing
        texture = ndimage.gaussian_filter(rng.standard_normal(canvas.hu.shape).astype(np.float32), sigma)
        texture /= texture.std() + 1e-6
    amplitude = np.zeros(len(ORGANS), dtype=np.float32)
    for name, value in TEXTURE_HU.items():
        amplitude[LABEL[name]] = value
    textured = canvas.hu + amplitude[canvas.labels] * texture
    return ndimage.gaussian_filter(textured, PARTIAL_VOLUME_PIXELS).astype(np.float32)
