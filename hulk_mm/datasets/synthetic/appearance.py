"""Per-person appearance: named attributes (kept in the record for attribute/caption tasks) and render colours.

Every attribute here changes pixels: colours are those of the garments, lengths decide which primitives carry
the clothing labels, ``hat``/``bag``/``hair`` add primitives, ``build`` (from the body shape) scales girth.
"""

# Named garment colours (RGB). Hues are far apart so that a colour name stays recognisable after shading and
# the small per-person jitter below.
PALETTE = {
    'black': (30, 30, 34), 'white': (232, 232, 228), 'gray': (128, 128, 128), 'red': (200, 32, 36),
    'orange': (236, 132, 24), 'yellow': (232, 212, 40), 'green': (40, 148, 64), 'blue': (40, 72, 200),
    'purple': (118, 52, 160), 'pink': (238, 146, 186), 'brown': (118, 74, 40),
}
COLOR_NAMES = tuple(PALETTE)
SKIN_TONES = ((255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (96, 60, 32))
HAIR_COLORS = ((28, 24, 22), (74, 48, 30), (128, 88, 50), (200, 168, 98), (160, 160, 160))
HAIR_COLOR_NAMES = ('black', 'dark brown', 'brown', 'blond', 'gray')  # names of HAIR_COLORS, same order
SHOE_COLORS = ('black', 'white', 'brown', 'gray')
BAG_TYPES = ('backpack', 'handbag')


def _jitter(rng, rgb, amount=12):
    return tuple(min(max(int(c + d), 0), 255) for c, d in zip(rgb, rng.integers(-amount, amount + 1, 3)))


def sample_appearance(rng, shape):
    """Sample (attributes, colors) for a person of ``shape``.

    Returns:
        attributes: JSON-safe dict: ``upper_color``, ``lower_color`` (names from ``PALETTE``), ``sleeve``
            ('short'|'long'), ``lower_length`` ('short'|'long'), ``hat`` (bool), ``hat_color`` (name|None),
            ``bag`` (bool), ``bag_type`` (``BAG_TYPES`` entry|None), ``bag_color`` (name|None), ``hair``
            ('short'|'long'), ``shoe_color`` (name), ``build`` ('slim'|'average'|'heavy').
        colors: dict of RGB tuples used by the renderer: ``skin``, ``hair``, ``upper``, ``lower``, ``shoes``,
            ``hat``, ``bag`` (the last two only when present).
    """
    upper, lower = (COLOR_NAMES[i] for i in rng.integers(len(COLOR_NAMES), size=2))
    hat, bag = bool(rng.random() < 0.25), bool(rng.random() < 0.3)
    hat_color = COLOR_NAMES[rng.integers(len(COLOR_NAMES))] if hat else None
    bag_type = BAG_TYPES[rng.integers(len(BAG_TYPES))] if bag else None
    bag_color = COLOR_NAMES[rng.integers(len(COLOR_NAMES))] if bag else None
    shoes = SHOE_COLORS[rng.integers(len(SHOE_COLORS))]
    attributes = dict(
        upper_color=upper, lower_color=lower,
        sleeve='short' if rng.random() < 0.45 else 'long',
        lower_length='short' if rng.random() < 0.3 else 'long',
        hat=hat, hat_color=hat_color, bag=bag, bag_type=bag_type, bag_color=bag_color,
        hair='long' if rng.random() < 0.35 else 'short',
        shoe_color=shoes, build=shape['build'],
    )
    colors = dict(
        skin=_jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 8),
        hair=_jitter(rng, HAIR_COLORS[rng.integers(len(HAIR_COLORS))], 8),
        upper=_jitter(rng, PALETTE[upper]), lower=_jitter(rng, PALETTE[lower]),
        shoes=_jitter(rng, PALETTE[shoes]),
    )
    if hat:
        colors['hat'] = _jitter(rng, PALETTE[hat_color])
    if bag:
        colors['bag'] = _jitter(rng, PALETTE[bag_color])
    return attributes, colors
