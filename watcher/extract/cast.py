"""Cast: tables (header-aware) beat list items beat prose; names normalised, aliases kept."""

from __future__ import annotations

import re

from watcher.extract.text import clean
from watcher.records import CastFact, Document, name_key, normalise_name

_NAME = re.compile(r"^[A-Z][\w'’.-]*(?:\s+(?:[A-Z][\w'’.-]*|de|van|von|da|del|la|le)){0,3}$")
_CREW = re.compile(r"\b(showrunner|executive produc\w*|director|directed|writer|written|creator|created|producer|"
                   r"composer|filmmaker)\b", re.I)
_BAD_NAME_WORDS = re.compile(r"\b(Season|Netflix|Episode|Series|Cast|The|Part|Chapter|Q|Yes|No)\b")
# "It's Kim Joo Ah", "Fans' favourite": a contraction or possessive is sentence text, never part of a name.
_CONTRACTION = re.compile(r"\w['’](?:s|re|ll|ve|d|t|m)\b")
_PAREN_ALIAS = re.compile(r"^(?P<name>[^()]+?)\s*\((?P<alias>[^()]+)\)\s*$")
_PRIORITY = {"row": 3, "item": 2, "prose": 1}


def status_of(text: str | None) -> str | None:
    t = (text or "").lower()
    if not t:
        return None
    if re.search(r"\b(exit\w*|left|leav\w*|depart\w*|not returning|won'?t return|dropped out|replaced)\b", t):
        return "exited"
    if re.search(r"\b(linked|teas\w*|rumou?r\w*|unclear|not (?:fully )?clear|unconfirmed|tbc|tba|may|might|"
                 r"possibl\w*|uncertain|mystery|depending)\b", t):
        return "unconfirmed"
    if re.search(r"\b(return\w*|back|reprising|coming back)\b", t):
        return "returning"
    if re.search(r"\b(new|join\w*|adds?|added|newcomers?|cast as)\b", t):
        return "new"
    return None


def looks_like_name(text: str) -> bool:
    text = text.strip()
    return (2 <= len(text) <= 40 and bool(_NAME.match(text)) and not _BAD_NAME_WORDS.search(text)
            and not _CONTRACTION.search(text) and not any(ch.isdigit() for ch in text))


def split_alias(name: str) -> tuple[str, list[str]]:
    m = _PAREN_ALIAS.match(name)
    if m and looks_like_name(m["alias"].strip()):
        return m["name"].strip(), [normalise_name(m["alias"])]
    return name, []


class CastBuilder:
    def __init__(self) -> None:
        self.entries: dict[str, CastFact] = {}
        self.rank: dict[str, int] = {}
        self.keys: dict[str, str] = {}  # name/alias key -> display name

    def add(self, actor: str, character: str | None, status: str, evidence: str, kind: str) -> None:
        actor, aliases = split_alias(clean(actor))
        actor = normalise_name(actor)
        if not looks_like_name(actor):
            return
        keys = [name_key(actor), *(name_key(a) for a in aliases)]
        existing = next((self.keys[k] for k in keys if k in self.keys), None)
        character = normalise_name(character) if character and looks_like_name(character) else None
        conf = {"row": 0.9, "item": 0.75, "prose": 0.6}[kind]
        if existing is None:
            self.entries[actor] = CastFact(character=character, status=status, aliases=aliases,  # type: ignore[arg-type]
                                           evidence=evidence, confidence=conf)
            self.rank[actor] = _PRIORITY[kind]
            for k in keys:
                self.keys[k] = actor
            return
        old = self.entries[existing]
        merged_aliases = list(dict.fromkeys([*old.aliases, *aliases]))
        if _PRIORITY[kind] > self.rank[existing]:
            new = CastFact(character=character or old.character, status=status, aliases=merged_aliases,  # type: ignore[arg-type]
                           evidence=evidence, confidence=conf)
            self.rank[existing] = _PRIORITY[kind]
        else:
            better_status = status if old.status == "listed" and status != "listed" else old.status
            new = old.model_copy(update={"character": old.character or character, "aliases": merged_aliases,
                                         "status": better_status})
        self.entries[existing] = new
        for k in keys:
            self.keys[k] = existing


def _col(header: tuple[str, ...], rx: str) -> int | None:
    return next((i for i, h in enumerate(header) if re.search(rx, h, re.I)), None)


def from_tables(doc: Document, cb: CastBuilder) -> None:
    for table in doc.tables:
        a = _col(table.header, r"\b(actor|actress|cast|star|name|performer|played by)\b")
        if a is None:
            continue
        c = _col(table.header, r"\b(character|role|playing|as)\b")
        st = _col(table.header, r"\b(status|returning|confirmed)\b")
        for row in table.rows:
            if a >= len(row):
                continue
            char = row[c] if c is not None and c < len(row) else None
            if char and re.search(r"\b(new role|tba|tbc|unknown|n/a)\b", char, re.I):
                char = None
            status = status_of(row[st]) if st is not None and st < len(row) else None
            cb.add(row[a], char, status or "listed", " | ".join(row), "row")


_AS = re.compile(r"\s+as\s+")


def _chain(item: str) -> list[tuple[str, str]]:
    """'A as B C as D' (several pairings run together) -> [(A, B), (C, D)]; character names are two words."""
    parts = [p.strip(" ,;") for p in _AS.split(item)]
    pairs: list[tuple[str, str]] = []
    actor = parts[0]
    for i, part in enumerate(parts[1:], 1):
        part = re.sub(r"\s*\(.*?\)\s*", " ", part).strip()
        part = re.split(r",\s*(?:and\s+)?|\s+and\s+", part)
        if len(part) > 1:
            pairs.append((actor, part[0]))
            actor = part[-1]
            continue
        words = part[0].split()
        if i < len(parts) - 1 and len(words) >= 3:
            pairs.append((actor, " ".join(words[:2])))
            actor = " ".join(words[2:])
        else:
            pairs.append((actor, part[0]))
    # repair: an actor given as a fragment of a neighbouring full name ('Ji-hu ... Park Ji-hu') is that name.
    names = [a for a, _ in pairs] + [c for _, c in pairs]
    fixed: list[tuple[str, str]] = []
    used: set[str] = set()
    for actor, char in pairs:
        full = next((n for n in names if n != actor and (n.endswith(" " + actor) or n.startswith(actor + "-"))), None)
        if full and full not in used:
            actor = full
        if actor in used:
            continue
        used.add(actor)
        fixed.append((actor, char))
    return fixed


def from_lists(doc: Document, cb: CastBuilder) -> None:
    for block in doc.lists:
        context = " ".join(x for x in (block.heading, block.lead) if x)
        castish = bool(re.search(r"\b(cast|star\w*|returning|joins?|joining|adds?|lead\w*|actors?|faces)\b",
                                 context, re.I))
        status = status_of(context) or "listed"
        for item in block.items:
            item = clean(item)
            own = status_of(" ".join(re.findall(r"\(([^)]*)\)", item)))
            if _AS.search(item) and not _CREW.search(item):
                for actor, char in _chain(item):
                    cb.add(actor, char, own or status, item, "item")
            elif castish and looks_like_name(split_alias(item)[0]):
                cb.add(item, None, own or status, item, "item")


_STARRING = re.compile(r"\b(?:starring|stars?|co-stars?|alongside|cast includes|cast members? include)\s+", re.I)
_PROSE_ROLE = re.compile(
    r"(?P<name>\b[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){1,2})\s+(?:(?:will|is set to|is expected to|has)\s+)?"
    r"(?P<verb>returns?|returning|reprises?|reprising|joins?|joined|joining|plays?|playing|portrays?|stars)"
    r"(?:\s+(?:the\s+cast|the\s+series|the\s+show|her\s+role|his\s+role|their\s+roles?))?"
    r"(?:(?:\s+as|(?<=plays)|(?<=portrays))\s+(?P<char>[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){0,2}))?")
_EXITED = re.compile(r"^(?P<name>[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){0,3}),\s+who\b[^.]*?\b(?P<verb>reportedly exited|"
                     r"exited|left|departed|will not return|won'?t return)", re.I)


def _name_run(text: str) -> list[str]:
    names: list[str] = []
    for part in re.split(r",\s*(?:and\s+)?|\s+and\s+", text):
        part = part.strip().rstrip(".;:!?")
        if looks_like_name(part):
            names.append(part)
        else:
            m = re.match(r"^([A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){1,3})\b", part)
            if m and looks_like_name(m.group(1)) and names:
                names.append(m.group(1))
            break
    return names


def from_prose(sentences: list[str], cb: CastBuilder) -> None:
    for s in sentences:
        if _CREW.search(s) and not _STARRING.search(s):
            continue
        m = re.search(r"(?:^|[.;]\s*)(?P<name>[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){1,3}),\s+who\b.*?\b(?:reportedly\s+)?"
                      r"(?:exited|left|departed|quit|will not return|won'?t return)", s)
        if m is None:
            m = re.search(r"\bthat\s+(?P<name>[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){1,3}),\s+who\b.*?\b"
                          r"(?:reportedly\s+)?(?:exited|left|departed|quit)", s)
        if m:
            cb.add(m["name"], None, "exited", s, "prose")
        for pm in _PROSE_ROLE.finditer(s):
            verb = pm["verb"].lower()
            status = ("returning" if verb.startswith(("return", "reprise", "back")) else
                      "new" if verb.startswith("join") else "listed")
            char = pm["char"]
            after = s[pm.end():pm.end() + 40]
            if (char and not looks_like_name(char)) or re.match(r"\s+as\s+(?:an?\s+|the\s+)?[a-z]", after) \
                    or _CREW.search(after):
                continue  # 'returns as showrunner', 'stars as a detective': crew or description, not a role
            if re.search(r"\b(will|set to|expected to)\b", s[:pm.start("verb")][-30:]) and status == "listed":
                status = "listed"
            cb.add(pm["name"], char, status, s, "prose")
        lead = re.match(r"^(?P<name>[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){1,2})\s+stars\s+in\b", s)
        if lead:
            cb.add(lead["name"], None, "listed", s, "prose")
        for st in _STARRING.finditer(s):
            if _CREW.search(s[max(0, st.start() - 60):st.start()]):
                continue
            for name in _name_run(s[st.end():]):
                cb.add(name, None, "listed", s, "prose")
    # 'Alex Levy (Aniston)': a character followed by a listed actor's surname.
    surnames = {name.split()[-1]: name for name in cb.entries}
    for s in sentences:
        for m in re.finditer(r"([A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){1,2})\s+\(([A-Z][\w'’-]+)\)", s):
            actor = surnames.get(m.group(2))
            if actor and not cb.entries[actor].character and name_key(m.group(1)) != name_key(actor):
                cb.entries[actor] = cb.entries[actor].model_copy(update={"character": normalise_name(m.group(1))})


def extract_cast(doc: Document, sentences: list[str]) -> dict[str, CastFact]:
    cb = CastBuilder()
    from_tables(doc, cb)
    from_lists(doc, cb)
    from_prose(sentences, cb)
    return cb.entries
