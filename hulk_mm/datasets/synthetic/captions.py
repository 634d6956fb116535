"""CUHK-PEDES-style sentences from the visible facts of a person (``writers.attribute.visible_facts``).

Each sentence is built from one of several templates (``TEMPLATES``: different word orders and sentence
splits), with synonyms drawn for nouns, verbs and garments and some optional clauses (hair, build, viewpoint)
left out at random. Colour names are always the palette names, and every template mentions the upper garment
with its colour, so a caption always names the upper colour. Nothing that is not visible in the crop is
mentioned (``visible_facts`` only holds visible things; a hidden bag is None).
"""
NOUNS = ('person', 'pedestrian', 'individual')
BUILD_WORDS = {'slim': ('slim', 'thin', 'slender'), 'average': ('', 'medium-built', 'average-sized'),
               'heavy': ('heavy', 'heavyset', 'stocky')}
UPPER_WORDS = {'short': ('{} short-sleeved shirt', '{} t-shirt', '{} short-sleeved top'),
               'long': ('{} long-sleeved shirt', '{} long-sleeved top', '{} long-sleeve shirt')}
LOWER_WORDS = {'short': ('{} shorts', 'a pair of {} shorts', 'short {} pants'),
               'long': ('{} trousers', '{} pants', 'a pair of {} trousers', 'long {} pants')}
HAT_WORDS = ('{} hat', '{} cap')
BAG_WORDS = {'backpack': ('{} backpack', '{} rucksack'), 'handbag': ('{} handbag', '{} hand bag')}
# each fits both 'The person is ...' and a leading '..., a person wears'
VIEW_WORDS = {'front': ('facing the camera', 'seen from the front'),
              'side': ('seen from the side', 'shown in profile', 'turned sideways'),
              'back': ('seen from behind', 'facing away from the camera', 'turned away from the camera')}
WEAR_VERBS = ('wears', 'is wearing', 'is dressed in')
CARRY_VERBS = ('carries', 'is carrying', 'has')
OPTIONAL_CLAUSE_P = 0.75  # probability that an optional clause (hair, build, viewpoint) is kept


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _a(phrase):
    """``phrase`` with its indefinite article; phrases starting with 'a pair' already have one."""
    if phrase.startswith('a pair'):
        return phrase
    return ('an ' if phrase[0] in 'aeiou' else 'a ') + phrase


def _join(items):
    """'x', 'x and y', 'x, y and z'."""
    return items[0] if len(items) == 1 else ', '.join(items[:-1]) + ' and ' + items[-1]


def _sentence(text):
    return text[0].upper() + text[1:]


class _Words:
    """The phrases of one sentence, each drawn once from ``rng``."""

    def __init__(self, facts, rng):
        self.facts = facts
        self.noun = _pick(rng, NOUNS)
        self.build = _pick(rng, BUILD_WORDS[facts['build']])
        self.upper = _a(_pick(rng, UPPER_WORDS[facts['sleeve']]).format(facts['upper_color']))
        self.lower = _pick(rng, LOWER_WORDS[facts['lower_length']]).format(facts['lower_color'])
        self.hair = f"{facts['hair']} {facts['hair_color']} hair" if rng.random() < 0.5 else f"{facts['hair']} hair"
        self.hat = _a(_pick(rng, HAT_WORDS).format(facts['hat_color'])) if facts['hat'] else None
        self.bag = _a(_pick(rng, BAG_WORDS[facts['bag']]).format(facts['bag_color'])) if facts['bag'] else None
        self.view = _pick(rng, VIEW_WORDS[facts['viewpoint']])
        self.wear, self.carry = _pick(rng, WEAR_VERBS), _pick(rng, CARRY_VERBS)
        self.keep_hair, self.keep_build, self.keep_view = (rng.random(3) < OPTIONAL_CLAUSE_P).tolist()

    def subject(self):
        """'a slim pedestrian' (the build word only when kept and not empty)."""
        build = self.build if self.keep_build and self.build else ''
        return _a(f'{build} {self.noun}'.strip())


def _wear_then_has(w):
    # "A slim pedestrian wears a red t-shirt and blue pants. The person has short hair and carries a bag. ..."
    text = f'{_sentence(w.subject())} {w.wear} {_join([w.upper, w.lower] + ([w.hat] if w.hat else []))}.'
    has = [w.hair] if w.keep_hair else []
    tail = [f'has {_join(has)}'] if has else []
    if w.bag:
        tail.append(f'{w.carry} {w.bag}')
    if tail:
        text += f' The {w.noun} {_join(tail)}.'
    if w.keep_view:
        text += f' The {w.noun} is {w.view}.'
    return text


def _with_clauses(w):
    # "A person with long hair, in a red t-shirt and black shorts, wearing a cap, carrying a bag, seen from behind."
    parts = [w.subject() + (f' with {w.hair}' if w.keep_hair else ''), f'in {w.upper} and {w.lower}']
    if w.hat:
        parts.append(f'wearing {w.hat}')
    if w.bag:
        parts.append(f'carrying {w.bag}')
    if w.keep_view:
        parts.append(w.view)
    return _sentence(', '.join(parts)) + '.'


def _view_first(w):
    # "Seen from the side, a heavyset individual is wearing gray pants and a white top. ..."
    lead = f'{_sentence(w.view)}, {w.subject()}' if w.keep_view else _sentence(w.subject())
    text = f'{lead} {w.wear} {w.lower} and {w.upper}.'
    if w.hat:
        text += f' {_sentence(w.hat)} is on the head.'
    if w.keep_hair:
        text += f" The {w.noun}'s hair is {w.facts['hair']}."
    if w.bag:
        text += f' The {w.noun} {w.carry} {w.bag}.'
    return text


def _this_has(w):
    # "This pedestrian has long blond hair and wears an orange t-shirt with black shorts. ..."
    has = f'has {w.hair} and ' if w.keep_hair else ''
    text = f'This {w.noun} {has}{w.wear} {w.upper} with {w.lower}.'
    extras = ([w.hat] if w.hat else []) + ([w.bag] if w.bag else [])
    if extras:
        text += f' There is {_join(extras)}.'
    if w.keep_build and w.build:
        text += f' The {w.noun} looks {w.build}.'
    if w.keep_view:
        text += f' In this picture the {w.noun} is {w.view}.'
    return text


def _upper_first(w):
    # "The person in a red shirt is also wearing blue trousers and a cap, and carries a bag."
    items = [w.lower] + ([w.hat] if w.hat else [])
    text = f'The {w.noun} in {w.upper} {w.wear} {_join(items)}'
    if w.bag:
        text += f' and {w.carry} {w.bag}'
    text += '.'
    if w.keep_hair:
        text += f' {_sentence(w.hair)} can be seen.'
    if w.keep_build and w.build:
        text += f' The {w.noun} is {w.build}.'
    return text


TEMPLATES = (_wear_then_has, _with_clauses, _view_first, _this_has, _upper_first)


def describe(facts, rng, count=2):
    """``count`` different sentences for one person, from ``count`` different templates.

    Args:
        facts: ``writers.attribute.visible_facts`` dict.
        rng: ``np.random.Generator``; the sentences depend only on it and ``facts``.
        count: sentences (at most ``len(TEMPLATES)``).

    Returns:
        list of ``count`` distinct strings.
    """
    if not 1 <= count <= len(TEMPLATES):
        raise ValueError(f'count must be in [1, {len(TEMPLATES)}], got {count}')
    order = rng.permutation(len(TEMPLATES))[:count]
    return [TEMPLATES[i](_Words(facts, rng)) for i in order]
