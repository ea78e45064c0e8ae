"""The built-in synthetic anime series: cel-shaded episodes, their manga volume and the ground truth.

Nobody can ship copyrighted anime, so the demo, the tests and the benchmarks run on this series.
It is deterministic for a given seed and has everything the real data has that the tools care about:

- **Episodes** (H.264 mp4): flat colours with dark outlines, round-headed characters that walk and
  change pose over painted backgrounds (sky gradient, hills, ground, trees, houses), camera pans,
  animated "on twos" (each drawing held 2 frames), hard cuts between shots. Every episode starts with
  the same intro and ends with the same outro, as real series do (the frames without manga support).
- **Manga volume**: greyscale PNG pages of 2-4 panels, each panel the line-art-and-screentone version
  of a key drawing of the page's frames; the pages follow the episodes in order.
- **ground_truth.json**: per episode its ``page_range`` (half-open ``[first, stop)`` in the volume),
  the page boundaries in the study's tag format (list indexed by page in the episode's page range,
  value = largest frame index on that page), intro/outro frame ranges (half-open ``[start, stop)``)
  and cuts (frame indices where a new shot starts).

Layout written: ``episodes/ep000.mp4 ...``, ``manga/page0000.png ...``, ``ground_truth.json``.
"""

import dataclasses
import math
import os
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import PIL.Image
import PIL.ImageDraw

from manganime_ext.io.json_files import write_json
from manganime_ext.io.outputs import atomic_output_dir
from manganime_ext.io.video import write_mp4

Colour = Tuple[int, int, int]
OUTLINE: Colour = (28, 24, 36)
SKIES = [((96, 160, 235), (215, 235, 250)), ((245, 150, 110), (255, 225, 175)),
         ((80, 70, 150), (235, 160, 170)), ((120, 200, 230), (240, 250, 250))]
GROUNDS = [(110, 175, 90), (205, 180, 120), (135, 150, 160), (90, 150, 115)]
HILLS = [(80, 140, 110), (150, 130, 170), (100, 120, 90), (170, 150, 110)]
SKINS = [(252, 222, 192), (236, 190, 150), (196, 146, 108)]
CLOTHES = [(226, 78, 82), (78, 120, 222), (248, 198, 70), (118, 198, 118), (188, 108, 208), (250, 250, 245)]
HAIR = [(40, 30, 30), (230, 190, 80), (200, 80, 60), (70, 90, 190)]
# Arm angles (left, right) in degrees from hanging down, the key poses characters switch between.
POSES = [(10, -10), (150, -10), (160, -160), (40, -100), (-30, 120)]
PROPS = ("tree", "house", "ball")


class SynthError(ValueError):
    """Options that cannot make a series (e.g. an intro and outro longer than the episode)."""


@dataclasses.dataclass
class Character:
    x: float                 # world position of the feet (screen widths; the camera starts at 0)
    y: float                 # feet height (fraction of frame height)
    size: float              # height (fraction of frame height)
    skin: Colour
    shirt: Colour
    pants: Colour
    hair: Colour
    speed: float             # world units per frame (walking)
    poses: List[int]         # key pose index per pose slot
    pose_frames: int         # frames a key pose is held


@dataclasses.dataclass
class Prop:
    kind: str
    x: float
    y: float
    size: float
    colour: Colour


@dataclasses.dataclass
class Shot:
    """One shot: what a frame shows is a pure function of the shot and the frame's time inside it."""
    frames: int
    kind: str                # 'scene' | 'title' | 'credits'
    sky: Tuple[Colour, Colour]
    ground: Colour
    hill: Colour
    horizon: float           # fraction of frame height
    hills: List[Tuple[float, float]]  # (world x, radius in screen widths)
    pan: float               # camera speed, world units per frame
    characters: List[Character]
    props: List[Prop]


def _colour(rnd: np.random.RandomState, palette: Sequence) -> Colour:
    return tuple(palette[rnd.randint(len(palette))])


def _even(n: float) -> int:
    """Shot lengths are even so that every drawing is held exactly two frames ("on twos")."""
    return max(2, 2 * int(round(n / 2)))


Look = Tuple[Colour, Colour, Colour, Colour]  # skin, shirt, pants, hair


def make_cast(size: int, seed: int) -> List[Look]:
    """A recurring cast: ``size`` distinct looks (skin, shirt, pants, hair) that every shot draws from,
    as a real series' characters keep their design from shot to shot."""
    rnd = np.random.RandomState([seed, 7])
    looks = [(s, sh, p, h) for s in SKINS for sh in CLOTHES for p in CLOTHES for h in HAIR if sh != p]
    if not 1 <= size <= len(looks):
        raise SynthError(f"--cast {size}: choose 1 to {len(looks)} characters (0 = new characters every shot)")
    return [looks[i] for i in rnd.choice(len(looks), size, replace=False)]


def _cast_member(cast: Sequence[Look], drawn: Character, index: int) -> Look:
    """The cast member who plays a character: chosen from the random looks already drawn, so that the
    shots' random stream (positions, poses, timing) is the same with and without a cast."""
    key = sum(k * sum(colour) for k, colour in enumerate((drawn.skin, drawn.shirt, drawn.pants, drawn.hair), 1))
    return cast[(key + index) % len(cast)]


def make_shot(rnd: np.random.RandomState, frames: int, kind: str = "scene", cast: Optional[Sequence[Look]] = None) -> Shot:
    """A random shot: background, 1-3 characters, a few props, a camera pan (sometimes still); with a
    ``cast``, the characters are its members (distinct within the shot while the cast is big enough)."""
    pan = float(rnd.choice([0.0, 1.0, -1.0])) * rnd.uniform(0.002, 0.006)
    span = abs(pan) * frames + 1.5
    characters = [Character(
        x=rnd.uniform(0.15, 0.85), y=rnd.uniform(0.8, 0.95), size=rnd.uniform(0.4, 0.6),
        skin=_colour(rnd, SKINS), shirt=_colour(rnd, CLOTHES), pants=_colour(rnd, CLOTHES), hair=_colour(rnd, HAIR),
        speed=float(rnd.choice([0.0, 1.0, -1.0])) * rnd.uniform(0.002, 0.006),
        poses=list(rnd.randint(len(POSES), size=frames // 8 + 1)), pose_frames=int(rnd.choice([8, 12, 16])))
        for _ in range(rnd.randint(1, 4))]
    if cast:
        for i, c in enumerate(characters):
            c.skin, c.shirt, c.pants, c.hair = _cast_member(cast, characters[0], i)
    props = [Prop(kind=PROPS[rnd.randint(len(PROPS))], x=rnd.uniform(-0.7, span - 0.5), y=rnd.uniform(0.62, 0.75),
                  size=rnd.uniform(0.15, 0.35), colour=_colour(rnd, CLOTHES)) for _ in range(rnd.randint(2, 5))]
    return Shot(frames=frames, kind=kind, sky=SKIES[rnd.randint(len(SKIES))], ground=_colour(rnd, GROUNDS),
                hill=_colour(rnd, HILLS), horizon=rnd.uniform(0.55, 0.7),
                hills=[(rnd.uniform(-0.7, span), rnd.uniform(0.2, 0.5)) for _ in range(4)],
                pan=pan, characters=characters, props=sorted(props, key=lambda p: p.y))


def _outlined_line(draw: PIL.ImageDraw.ImageDraw, pts, colour: Colour, width: float, line: float) -> None:
    draw.line(pts, fill=OUTLINE, width=max(1, int(width + 2 * line)), joint="curve")
    draw.line(pts, fill=colour, width=max(1, int(width)), joint="curve")


def _draw_character(draw: PIL.ImageDraw.ImageDraw, c: Character, t: int, cx: float, size: int) -> None:
    """A round-headed figure: legs swing while walking, arms take the current key pose."""
    h = c.size * size
    lw = max(1.0, size / 64)               # outline width
    fx, fy = (c.x + c.speed * t - cx) * size, c.y * size
    hip, shoulder, head_r = fy - 0.38 * h, fy - 0.68 * h, 0.17 * h
    swing = math.radians(28) * math.sin(t * 0.35) if c.speed else 0.0
    limb = 0.09 * h
    for s in (swing, -swing):
        _outlined_line(draw, [(fx, hip), (fx + math.sin(s) * 0.38 * h, hip + math.cos(s) * 0.38 * h)], c.pants, limb, lw)
    pose = POSES[c.poses[min(t // c.pose_frames, len(c.poses) - 1)]]
    for side, angle in zip((-1, 1), pose):
        a = math.radians(angle)
        sx = fx + side * 0.12 * h
        _outlined_line(draw, [(sx, shoulder), (sx + side * abs(math.sin(a)) * 0.3 * h, shoulder + math.cos(a) * 0.3 * h)],
                       c.skin, limb * 0.8, lw)
    draw.rounded_rectangle([fx - 0.15 * h, shoulder - 0.03 * h, fx + 0.15 * h, hip + 0.04 * h], radius=0.06 * h,
                           fill=c.shirt, outline=OUTLINE, width=max(1, int(lw)))
    hx, hy = fx, shoulder - head_r * 0.95
    draw.ellipse([hx - head_r, hy - head_r, hx + head_r, hy + head_r], fill=c.skin, outline=OUTLINE, width=max(1, int(lw)))
    draw.chord([hx - head_r, hy - head_r, hx + head_r, hy + head_r * 0.4], 180, 360, fill=c.hair, outline=OUTLINE,
               width=max(1, int(lw)))
    look = 0.25 * head_r * (1 if c.speed >= 0 else -1)
    for ex in (-0.38, 0.38):
        e = (hx + ex * head_r + look, hy + 0.15 * head_r)
        r = 0.16 * head_r
        draw.ellipse([e[0] - r, e[1] - 1.4 * r, e[0] + r, e[1] + 1.4 * r], fill=OUTLINE)
        draw.ellipse([e[0] - 0.4 * r, e[1] - r, e[0] + 0.2 * r, e[1] - 0.3 * r], fill=(255, 255, 255))
    draw.arc([hx - 0.3 * head_r + look, hy + 0.3 * head_r, hx + 0.3 * head_r + look, hy + 0.7 * head_r], 20, 160,
             fill=OUTLINE, width=max(1, int(lw)))


def _draw_prop(draw: PIL.ImageDraw.ImageDraw, p: Prop, cx: float, size: int) -> None:
    x, y, s = (p.x - cx) * size, p.y * size, p.size * size
    lw = max(1, int(size / 64))
    if p.kind == "tree":
        draw.rectangle([x - 0.08 * s, y - 0.5 * s, x + 0.08 * s, y], fill=(130, 90, 60), outline=OUTLINE, width=lw)
        draw.ellipse([x - 0.4 * s, y - 1.2 * s, x + 0.4 * s, y - 0.4 * s], fill=(70, 150, 80), outline=OUTLINE, width=lw)
    elif p.kind == "house":
        draw.rectangle([x - 0.4 * s, y - 0.6 * s, x + 0.4 * s, y], fill=p.colour, outline=OUTLINE, width=lw)
        draw.polygon([(x - 0.5 * s, y - 0.6 * s), (x, y - 1.0 * s), (x + 0.5 * s, y - 0.6 * s)], fill=(170, 70, 60),
                     outline=OUTLINE, width=lw)
        draw.rectangle([x - 0.1 * s, y - 0.3 * s, x + 0.1 * s, y], fill=(110, 80, 60), outline=OUTLINE, width=lw)
    else:
        r = 0.2 * s
        draw.ellipse([x - r, y - 2 * r, x + r, y], fill=p.colour, outline=OUTLINE, width=lw)


def _sky(shot: Shot, size: int) -> PIL.Image.Image:
    top, bottom = np.array(shot.sky[0], np.float32), np.array(shot.sky[1], np.float32)
    w = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    rows = (top * (1 - w) + bottom * w).astype(np.uint8)
    return PIL.Image.fromarray(np.repeat(rows, size, axis=1))


def _draw_scene(img: PIL.Image.Image, shot: Shot, t: int, size: int) -> None:
    draw = PIL.ImageDraw.Draw(img)
    lw = max(1, int(size / 64))
    cx = shot.pan * t
    horizon = shot.horizon * size
    for hx, hr in shot.hills:  # hills scroll at half speed: a cheap parallax
        x = (hx - cx * 0.5) * size
        draw.ellipse([x - hr * size, horizon - hr * size * 0.6, x + hr * size, horizon + hr * size * 0.6],
                     fill=shot.hill, outline=OUTLINE, width=lw)
    draw.rectangle([0, horizon, size, size], fill=shot.ground, outline=OUTLINE, width=lw)
    for p in shot.props:
        _draw_prop(draw, p, cx, size)
    for c in shot.characters:
        _draw_character(draw, c, t, cx, size)


def _draw_title(img: PIL.Image.Image, shot: Shot, t: int, size: int) -> None:
    """The intro's title card: a spinning star burst behind a big round emblem."""
    draw = PIL.ImageDraw.Draw(img)
    c, r = size / 2, size * 0.3
    for k in range(12):
        a0 = math.radians(k * 30 + t * 3)
        a1 = a0 + math.radians(15)
        draw.polygon([(c, c), (c + size * math.cos(a0), c + size * math.sin(a0)),
                      (c + size * math.cos(a1), c + size * math.sin(a1))], fill=shot.sky[1])
    draw.ellipse([c - r, c - r, c + r, c + r], fill=shot.ground, outline=OUTLINE, width=max(1, size // 32))
    draw.ellipse([c - r * 0.6, c - r * 0.6, c + r * 0.6, c + r * 0.6], fill=shot.hill, outline=OUTLINE,
                 width=max(1, size // 48))


def _draw_credits(img: PIL.Image.Image, shot: Shot, t: int, size: int) -> None:
    """The outro: light "text" bars scrolling up a dark card, one character standing by."""
    draw = PIL.ImageDraw.Draw(img)
    draw.rectangle([0, 0, size, size], fill=(30, 30, 60))
    for k in range(12):
        y = size * (1.0 + 0.12 * k) - t * size / 96
        w = size * (0.25 + 0.2 * ((k * 7) % 3))
        draw.rectangle([size * 0.45, y, size * 0.45 + w, y + size * 0.04], fill=(230, 230, 240))
    for c in shot.characters:
        _draw_character(draw, c, t, 0.0, size)


def render_frame(shot: Shot, t: int, size: int) -> np.ndarray:
    """Frame ``t`` of ``shot`` as HWC uint8, drawn at 2x and box-downsampled for clean outlines.

    ``t`` is rounded down to even: each drawing is held two frames (animation "on twos").
    """
    t -= t % 2
    big = 2 * size
    img = _sky(shot, big)
    {"scene": _draw_scene, "title": _draw_title, "credits": _draw_credits}[shot.kind](img, shot, t, big)
    return np.asarray(img.reduce(2))


def _screentone(shape: Tuple[int, int], period: int, radius: float) -> np.ndarray:
    """Boolean dot pattern on a 45-degree grid, like printed screentone."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    u, v = (x + y) % period - period / 2, (x - y) % period - period / 2
    return u * u + v * v < radius * radius


def line_art(rgb: np.ndarray) -> np.ndarray:
    """Greyscale manga rendering of a cel-shaded frame: black lines, white paper, screentone for mid tones.

    Lines are the dark outlines plus every edge between flat colours; fills become white, light dots
    or dense dots by luminance. Pure function of the pixels, so a panel is the line art of its frame.
    """
    f = rgb.astype(np.float32)
    lum = f @ np.array([0.299, 0.587, 0.114], np.float32)
    edge = np.zeros(lum.shape, bool)
    edge[:, 1:] |= np.abs(np.diff(f, axis=1)).sum(-1) > 90
    edge[1:, :] |= np.abs(np.diff(f, axis=0)).sum(-1) > 90
    out = np.full(lum.shape, 255, np.uint8)
    out[(lum < 175) & _screentone(lum.shape, 4, 1.2)] = 0
    out[(lum < 120) & _screentone(lum.shape, 4, 1.9)] = 0
    out[edge | (lum < 60)] = 0
    return out


def _panel_boxes(rnd: np.random.RandomState, count: int, width: int, height: int) -> List[Tuple[int, int, int, int]]:
    """2-4 panel rectangles (x0, y0, x1, y1): stacked strips, one of them split in two when 3 or 4."""
    m, g = width // 16, max(2, width // 40)
    rows = {2: [1, 1], 3: [1, 2], 4: [2, 2]}[count]
    if count == 3 and rnd.rand() < 0.5:
        rows = rows[::-1]
    boxes = []
    row_h = (height - 2 * m - g * (len(rows) - 1)) / len(rows)
    for r, cols in enumerate(rows):
        y0 = m + r * (row_h + g)
        col_w = (width - 2 * m - g * (cols - 1)) / cols
        for c in range(cols):
            x0 = m + c * (col_w + g)
            boxes.append((int(x0), int(y0), int(x0 + col_w), int(y0 + row_h)))
    return boxes


def render_page(rnd: np.random.RandomState, keys: Sequence[Tuple[Shot, int]], width: int) -> np.ndarray:
    """A greyscale manga page (HW uint8): one bordered panel per key drawing, in reading order."""
    height = int(width * 1.42)
    page = PIL.Image.new("L", (width, height), 255)
    draw = PIL.ImageDraw.Draw(page)
    for (shot, t), (x0, y0, x1, y1) in zip(keys, _panel_boxes(rnd, len(keys), width, height)):
        w, h = x1 - x0, y1 - y0
        side = max(w, h)
        art = line_art(render_frame(shot, t, side))
        ox, oy = (side - w) // 2, (side - h) // 2
        page.paste(PIL.Image.fromarray(art[oy: oy + h, ox: ox + w]), (x0, y0))
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=0, width=max(1, width // 100))
    return np.asarray(page)


@dataclasses.dataclass
class Episode:
    """The shots of one episode and where they fall; ``shots`` = intro + body + outro."""
    shots: List[Shot]
    intro_shots: int
    outro_shots: int

    @property
    def starts(self) -> List[int]:
        return list(np.cumsum([0] + [s.frames for s in self.shots[:-1]]))

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.shots)


def _split(rnd: np.random.RandomState, total: int, lo: int, hi: int) -> List[int]:
    """Even shot lengths in [lo, hi] that sum to ``total`` (the last absorbs the remainder)."""
    lengths: List[int] = []
    while total - sum(lengths) > hi:
        lengths.append(_even(rnd.randint(lo, hi + 1)))
    rest = total - sum(lengths)
    if rest < lo and lengths:
        lengths[-1] += rest
    else:
        lengths.append(rest)
    return lengths


def _credits_shot(rnd: np.random.RandomState, frames: int, cast: Optional[Sequence[Look]]) -> Shot:
    shot = make_shot(rnd, frames, "credits", cast)
    shot.characters = shot.characters[:1]
    shot.characters[0].x, shot.characters[0].speed = 0.22, 0.0
    return shot


def make_episodes(episodes: int, frames: int, intro: int, outro: int, shot_frames: Tuple[int, int],
                  seed: int, cast: int = 0) -> List[Episode]:
    """The shot lists of a series: one shared intro (title + character shot) and outro, random bodies;
    ``cast`` > 0 gives the series that many recurring characters (0: new characters in every shot)."""
    looks = make_cast(cast, seed) if cast else None
    series = np.random.RandomState(seed)
    title = _even(intro * 0.6)
    intro_shots = [make_shot(series, title, "title", looks), make_shot(series, intro - title, cast=looks)] if intro > 2 else []
    outro_shots = [_credits_shot(series, outro, looks)] if outro else []
    out = []
    for e in range(episodes):
        rnd = np.random.RandomState([seed, e + 1])
        body = [make_shot(rnd, n, cast=looks) for n in _split(rnd, frames - intro - outro, *shot_frames)]
        out.append(Episode(intro_shots + body + outro_shots, len(intro_shots), len(outro_shots)))
    return out


def episode_frames(episode: Episode, size: int) -> Iterator[np.ndarray]:
    """Every frame of an episode in order (a generator: memory stays flat however long it is)."""
    for shot in episode.shots:
        for t in range(shot.frames):
            yield render_frame(shot, t, size)


def plan_pages(rnd: np.random.RandomState, episode: Episode) -> List[Tuple[int, int]]:
    """Inclusive frame ranges of the body covered by each page: 1-2 whole shots a page, so boundaries sit at cuts."""
    starts, body = episode.starts, range(episode.intro_shots, len(episode.shots) - episode.outro_shots)
    pages, i = [], body.start
    while i < body.stop:
        j = min(i + rnd.randint(1, 3), body.stop)
        pages.append((starts[i], starts[j - 1] + episode.shots[j - 1].frames - 1))
        i = j
    return pages


def _page_keys(rnd: np.random.RandomState, episode: Episode, first: int, last: int) -> List[Tuple[Shot, int]]:
    """2-4 key drawings spread evenly over the frames [first, last], as (shot, time in shot)."""
    starts = episode.starts
    count, keys = rnd.randint(2, 5), []
    for k in range(count):
        frame = int(first + (k + 0.5) * (last - first + 1) / count)
        i = int(np.searchsorted(starts, frame, side="right") - 1)
        keys.append((episode.shots[i], frame - starts[i]))
    return keys


def write_series(out: str, episodes: int = 3, seconds: float = 30.0, resolution: int = 128, fps: int = 24,
                 seed: int = 0, intro_seconds: float = 3.0, outro_seconds: float = 2.0,
                 shot_seconds: Tuple[float, float] = (1.0, 3.0), cast: int = 0, force: bool = False,
                 progress: Optional[Callable[[int], None]] = None) -> dict:
    """Write the series to folder ``out`` (all at once, at the end) and return the ground truth.

    ``progress(n)`` is called with each episode's frame count once it is written, for a progress bar.
    """
    frames, intro, outro = _even(seconds * fps), _even(intro_seconds * fps) if intro_seconds else 0, \
        _even(outro_seconds * fps) if outro_seconds else 0
    lo, hi = _even(shot_seconds[0] * fps), _even(shot_seconds[1] * fps)
    if episodes < 1 or resolution < 16 or fps < 1:
        raise SynthError("--episodes, --resolution (>= 16) and --fps must be positive")
    if frames - intro - outro < lo:
        raise SynthError(f"--seconds {seconds}: episodes must be longer than the intro + outro + one shot")
    series = make_episodes(episodes, frames, intro, outro, (lo, hi), seed, cast)
    truth = {"fps": fps, "resolution": resolution, "seed": seed, "cast": cast, "pages": 0, "episodes": []}
    with atomic_output_dir(out, force) as tmp:
        os.makedirs(os.path.join(tmp, "episodes"))
        os.makedirs(os.path.join(tmp, "manga"))
        page_rnd = np.random.RandomState([seed, 0])
        for e, episode in enumerate(series):
            name = f"episodes/ep{e:03d}.mp4"
            write_mp4(os.path.join(tmp, name), episode_frames(episode, resolution), fps)
            if progress is not None:
                progress(episode.frames)
            pages = plan_pages(page_rnd, episode)
            first_page = truth["pages"]
            for p, (first, last) in enumerate(pages):
                page = render_page(page_rnd, _page_keys(page_rnd, episode, first, last), 2 * resolution)
                PIL.Image.fromarray(page).save(os.path.join(tmp, "manga", f"page{first_page + p:04d}.png"))
            truth["pages"] += len(pages)
            starts = episode.starts
            intro_stop = starts[episode.intro_shots] if episode.intro_shots else 0
            outro_start = starts[len(episode.shots) - episode.outro_shots] if episode.outro_shots else episode.frames
            truth["episodes"].append({
                "file": name, "frames": episode.frames, "intro": [0, int(intro_stop)],
                "outro": [int(outro_start), episode.frames], "cuts": [int(s) for s in starts[1:]],
                "page_range": [first_page, truth["pages"]], "boundaries": [int(last) for _, last in pages]})
        write_json(os.path.join(tmp, "ground_truth.json"), truth)
    return truth
