"""The extraction rules as data: lexicons of words and phrases with what they mean, each with the example it is for.

A new phrasing is a row here plus a unit test on an invented sentence (tests/test_extract_rules.py), not a
branch in code. The engines that apply these tables are names.py, cast.py, topic.py, status.py and release.py.
Patterns are regular-expression fragments matched case-insensitively on whole words.
"""

from __future__ import annotations

# --------------------------------------------------------------------------- words that are never names

_FUNCTION = """a an the and or but nor of for in on at to with without by from into onto over under as than then
that this these those there here when where while who whom whose which what why how if unless whether so yet
is are was were be been being am has have had do does did would shall should can could may might must
he she they it we i you his her their its our my your him them us me one all both each every some any no not
also just only even still again now new more most other another such very really about after before since
until during per via vs via despite though although because however meanwhile plus minus including includes
featuring two three four five six seven eight nine ten eleven twelve dozen several
yes okay hey well won't wont can't cant don't dont isn't isnt""".split()
# Month abbreviations are left out: 'Jun', 'Jan' and 'Mar' are also names ('Suk-ho Jun').
_CALENDAR = """january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday today tonight tomorrow yesterday spring summer fall autumn
winter christmas halloween easter""".split()
# Words of release news that start capitalised runs in headlines and lead-ins but are never part of a name.
_NEWS = """season seasons series episode episodes part chapter volume film films movie movies show shows sequel
prequel spin-off spinoff reboot remake franchise trailer teaser release released releasing date dates premiere
premieres premiered premiering debut debuts finale pilot update updates news report exclusive spoilers spoiler
plot synopsis details everything confirmed confirms official officially renewed renews renewal cancelled canceled
cancels cancellation returning return returns returned back filming join wraps wrapped production casting cast casts
casting adds added joins joined joining exits exited leaves leaving stars starring reprise reprises reprising
announces announced announcement reveals revealed first second third fourth fifth sixth seventh eighth ninth
tenth final last next upcoming original latest first-look look photo photos image images video watch read
source via credit courtesy getty instagram twitter facebook youtube tiktok weibo reddit deadline variety
""".split()
NEVER_NAME_WORDS = frozenset(_FUNCTION + _CALENDAR + _NEWS)
FUNCTION_WORDS = frozenset(_FUNCTION) - {"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                                         "eleven", "twelve", "one", "no"}

# Nouns that describe a person ('Australian actor Cody Fern', 'Ray Donovan alum Paula Malcomson'): never a name.
ROLE_NOUNS = frozenset("""actor actors actress actresses star stars co-star co-stars costar castmate castmates alum
alumna alumnus alumni veteran newcomer newcomers lead leads regular regulars cast-member member members performer
performers singer rapper comedian model host presenter winner nominee legend icon favorite favourite heartthrob idol
director directors producer producers writer writers showrunner showrunners creator creators author novelist
screenwriter cinematographer composer executive executives ceo coo president chairman chief boss head editor
reporter critic fans fan viewers audiences""".split())

# Crew: nouns and verbs that make a named person crew, not cast.
CREW_BEFORE = (r"(?:directed|written|created|produced|penned|helmed|co-written|co-directed|scripted|illustrated|"
               r"adapted|developed|shot|edited|composed|scored) by|(?:from|with) a (?:script|screenplay|story) by|"
               r"(?:co-)?directors?|filmmakers?|showrunners?|(?:executive |co-|series )?producers?|EPs?|"
               r"(?:screen|script)?writers?|creators?|authors?|novelists?|cinematographers?|composers?|"
               r"(?:character )?designers?|editors?|executives?|chief|head|ceo|coo|president|mangaka|illustrators?|"
               r"writer-directors?|writer/directors?|series creators?|co-creators?")
CREW_AFTER = (r"(?:(?:will|would|is|are|has|have|be|been|also|to|set to|who|currently|now|again|both|co-?)\s+)*"
              r"(?:direct|directs|directed|directing|co-directed|helm|helms|helmed|helming|write|writes|wrote|"
              r"writing|penned|pens|produce|produces|produced|producing|executive[- ]produc\w*|created|creates|"
              r"showrun\w*|(?:return\w*|back|on board|serve|serves|serving|continue\w*) (?:to (?:helm|direct|write|"
              r"produce|pen)|as (?:a |an |the )?(?:showrunner|director|writer|producer|executive producer|"
              r"director of photography|cinematographer|composer|creator|co-director|directors|writers)|on as "
              r"(?:a |the )?(?:director|writer|producer|showrunner)|behind the camera)|at the directing helm|"
              r"in the director'?s chair|takes? the helm|took the helm|directorial|stepping into the director|"
              r"(?:\w+\s+){0,3}?(?:slated|set|tapped|hired|attached|expected|on board) to (?:direct|write|produce|helm|"
              r"pen|score)|as (?:\w+ ){0,2}(?:designer|director|writer|producer|editor|composer|cinematographer|"
              r"showrunner|creator|animator|supervisor|choreographer|screenwriter|author)s?|"
              r"(?:the |a |an )?(?:\w+ ){0,3}(?:designer|director|writer|producer|editor|composer|cinematographer|"
              r"showrunner|creator|screenwriter|author|novelist|executive|ceo|coo|president|chief)s?\b)")

# --------------------------------------------------------------------------- cast: what governs a name

# Statuses a cue gives the names it governs. Each row: (pattern, status, example). Patterns are tried on the
# text between a group of names and the clause boundary on that side: "post" rows on the text right after the
# names (the names are the subject), "pre" rows on the text right before them (the names are the object).
# The cue nearest the names wins; a negation before a 'new'/'returning' cue makes it 'exited'.
CAST_POST: list[tuple[str, str, str]] = [
    (r"(?:has|have|had) (?:officially |reportedly |now |just |since )?(?:also )?(?:been )?"
     r"(?:exited|left|departed|quit|bowed out|stepped away|stepped down|walked away|dropped out)", "exited",
     "Dana Reyes has exited the film"),
    (r"exits?|exited|exiting|departs?|departed|departing|is leaving|are leaving|will leave|to leave|leaves|"
     r"left the (?:show|series|cast|film|role|project)", "exited", "Dana Reyes exits Nightfall"),
    (r"(?:will|would|is|are|was|were|does|do|did)(?: not|n't) (?:be )?(?:return\w*|back|reprising|reprise)|"
     r"won't (?:be )?(?:return\w*|back|reprising|reprise)|not (?:be )?returning|not be back|no longer (?:be|appear)"
     r"|(?:was|were) not announced as part of", "exited", "Dana Reyes will not be returning for season 3"),
    (r"(?:has|have|had) been (?:fired|replaced|written out|let go|recast)|(?:was|were|is|are|will be) (?:being )?"
     r"(?:fired|replaced|written out|let go|recast)", "exited",
     "Dana Reyes has been replaced in the role"),
    (r"(?:is|are) (?:reportedly |currently )?in (?:early |final |advanced )?(?:talks|negotiations)|"
     r"(?:is|are) (?:rumou?red|reported|tipped|linked|being eyed|eyed|said) to|(?:is|are) (?:rumou?red|linked)|"
     r"(?:had |has |have )?(?:also )?been offered|up in the air|(?:is|are|remains?) (?:still )?unconfirmed|"
     r"(?:(?-i:may)|might|could|would) (?:also )?(?:return|be back|appear|join|reprise|star)|"
     r"(?:is|are) (?:expected|likely|hoped|hoping|rumou?red) to (?:return|reprise|be back|join|appear|star)|"
     r"['’]s? (?:\w+ ){0,2}(?:character|role) (?:has |had |also )?(?:hinted|teased|suggested|seemed|appeared|"
     r"may be|might be|could be) (?:at |to be )?(?:leaving|exiting|departing|an exit|a departure|on (?:the|her|his) "
     r"way out)", "unconfirmed", "Dana Reyes is in talks to join Nightfall"),
    (r"(?:has|have|had) (?:officially |reportedly |now |just |also )*(?:joined|boarded|signed on|signed up|come aboard|"
     r"been cast|been tapped|been added|been recruited|been hired|been brought on|landed)|joins?|joining|will join|"
     r"to join|(?:is|are|was|were) (?:now |also )?(?:cast|tapped|added|recruited|hired)|signs? on|signed on|"
     r"boards?|(?:is|are|come|comes|coming) aboard|(?:is|are) (?:a |the )?(?:latest|newest|surprise|notable|big|"
     r"major|welcome) (?:additions?|cast|"
     r"members?)|(?:is|are) (?:also )?(?:set|tapped) to (?:star|play|join|appear)|round(?:s|"
     r"ing)? out the (?:new )?cast|"
     r"filling out the new|(?:is|are|as) (?:a |the )?new (?:additions?|cast members?|faces?|characters?|"
     r"series regulars?)|(?:will )?take on the (?:new )?role|make (?:his|her|their) (?:\w+ )?debuts?|"
     r"(?:has|have) replaced|"
     r"replaces|"
     r"will replace|(?:is|are) replacing|stepp?(?:s|ed|ing)? in for|t(?:akes?|ook) over (?:the role|from)|"
     r"will (?:also )?play "
     r"(?:a |the )?(?:significant|key|major|recurring|guest|lead|leading|starring|pivotal|main|supporting|"
     r"central) (?:roles?|parts?)|(?:has|have) been announced (?:as|for)|"
     r"(?:will |to |also |is set to |are set to |(?:is|are) going to )*appear (?:in|on) (?:the )?(?:upcoming|new|"
     r"next|forthcoming|coming) (?:season|series|episodes?|instal+ment)|as (?:a |the )?(?:special )?"
     r"guest(?:[- ]stars?)?\b", "new",
     "Tom Hale, Ivy Moss and Lee Park have joined the cast"),
    (r"(?:will |is |are |set to |also |both |all )*(?:return|returns|returning|reprise|reprises|reprising|"
     r"be back|is back|are back|come back|comes back|coming back|reappear|reappears|back as|back on screen)|"
     r"(?:has|have) been (?:upped|promoted|bumped)|upped to|promoted to", "returning",
     "Dana Reyes will reprise her role as Marta"),
    (r"(?:will |also |both |who )*(?:star|stars|starring|co-stars?|leads?|headlines?|plays?|playing|"
     r"played(?! by)|portrays?|portraying|voices?|voicing|appears?|features?)|(?:is|are) (?:part|members?) of the cast|"
     r"(?:is|are) (?:also )?in the cast|['’]s? (?:\w+ ){0,2}(?:character|characters|role|roles|sleuths?|"
     r"counterpart|alter ego)", "listed", "Dana Reyes plays Marta"),
]
CAST_PRE: list[tuple[str, str, str]] = [
    (r"without|minus|except(?: for)?|(?:fired|dropped|axed|written out|exit of|departure of|loses|replacing|"
     r"replaces|in place of|takes over from|steps in for|"
     r"stepping in for)", "exited", "the cast returns without Dana Reyes"),
    (r"(?:in talks|rumou?red|linked|tipped|expect|expecting|likely|possibly|could see|may see|might see|"
     r"up in the air (?:are|is)|unconfirmed)", "unconfirmed", "we can expect Dana Reyes and Tom Hale"),
    (r"(?:adds?|added|adding|casts|taps?|tapped|welcomes?|welcomed|recruits?|recruited|hires?|hired|"
     r"newcomers?|new additions?|additions?|new (?:cast|faces|stars|series regulars|members|castings?|people|"
     r"characters?|roles?|actors?|actresses)|"
     r"joined by|joining (?:the|its|this) [\w\s-]{0,30}?(?:cast|series|show|film|ensemble)|"
     r"new [\w\s-]{0,30}?cast members?|newly (?:announced|added|cast|revealed|confirmed|unveiled)|"
     r"(?:has|have) (?:added|cast|tapped)|(?:will|to) add|"
     r"(?:is|are) joined by|replaced by|guest stars? (?:include|are|will be)|guest-starring)", "new",
     "The series has added Tom Hale and Ivy Moss"),
    (r"(?:returning|reprising|also returning|back are|returnees?|returns include|"
     r"original (?:cast|stars?|actors?|players|cast members?|leads?)|"
     r"additional returns|reprise the entire|(?:return|returning) for|will see the return of)", "returning",
     "Returning for the new season are Dana Reyes and Tom Hale"),
    (r"(?:stars?|starred|starring|co-stars?|co-starred|co-starring|features?|featuring|featured|includes?|including|"
     r"included|headlined by|"
     r"led by|alongside|opposite|cast (?:also )?(?:includes?|included|members? include)|rounded out by|"
     r"ensemble|leads?|lead cast|main cast|voice cast|voiced by|played by|portrayed by|"
     r"(?:series )?regulars? (?:like|such as|including)|joining (?:them|him|her)|cast members?)", "listed",
     "The film also stars Dana Reyes and Tom Hale"),
]
# Words that turn a following 'new'/'returning' cue into an exit: "will not return", "won't be back".
NEGATION = r"(?:not|n't|never|no longer|won't|will not)"
# Hedges anywhere in the clause make a claim unconfirmed ("we can blindly expect", "rumoured").
HEDGES = (r"\b(?:rumou?r\w*|reportedly in talks|in talks|in negotiations|(?-i:may)|might|could|possibly|likely|"
          r"we can (?:\w+ )?expect|expected to (?:return|join|be back|reprise)|speculat\w*|unconfirmed|"
          r"not (?:yet )?(?:been )?confirmed|hopefully|perhaps|wishlist|fan ?cast|dream cast)\b")
# A role in another work is not this work's cast: "best known for her role as Marta in Other Show".
OTHER_WORK = (r"\b(?:best known|known for|recognized for|recognised for|famous for|previously (?:played|starred)|"
              r"last (?:part|seen)|also starred|(?:starred|appeared) in|alum(?:na|nus)?|credits? include|"
              r"who viewers recently saw|most recently (?:seen|starred)|fame)\b")
# Verbs that introduce a character after a name: "X plays Y", "X will star as Y", "X returns to voice Y".
CHARACTER_VERBS = (r"(?:(?:is|are|was|were|will|also|now|both|set|to|be|who|currently|rumou?red|reportedly|"
                   r"expected|going|likely|tipped|said|confirmed|officially|finally|has|have|been)\s+)*"
                   r"(?:(?:play|plays|playing|played|portray|portrays|portraying|portrayed|voice|voices|voicing|"
                   r"voiced)|(?:return|returns|returning|back|reprise|reprises|reprising|star|stars|starring|"
                   r"appear|appears|appearing|joins?|joining|joined|returned|reprised|cast|recast|debut|debuts)"
                   r"(?:\s+(?:to (?:play|voice)|"
                   r"(?:to\s+)?(?:the|its|this)\s+(?:\w+\s+)?(?:cast|series|show|film|movie|season|ensemble|"
                   r"franchise)(?:\s+(?:of|for|in)\s+[^,;]{1,60}?)?\s+as|"
                   r"(?:his|her|their|the)\s+(?:roles?|parts?)(?:\s+from\s+[^,;]+?)?\s+as|in (?:the )?(?:role|part) "
                   r"of|as))|make (?:his|her|their) (?:\w+ )?debuts? as|take on the (?:new )?role of|"
                   r"(?:the )?(?:role|part) of|is playing|"
                   r"as(?! well| part| soon| of| if| though| a result| such| usual| long| far| much| expected))")
# 'X how Y' is how some machine translations write 'X as Y' in cast lists.
AS_WORDS = r"as|how"

# Section headings and list lead-ins that give a status to the names under them ("The New Cast").
HEADING_STATUS: list[tuple[str, str, str]] = [
    (r"\b(?:exits?|exited|departures?|leaving|not returning|who won't return|missing)\b", "exited",
     "Who is not returning?"),
    (r"\b(?:new|newcomers?|additions?|joining|new faces|casts?\b.*\badds?)\b", "new", "The New Cast"),
    (r"\b(?:returning|returns?|back|reprising|coming back|original cast)\b", "returning", "The Returning Cast"),
    (r"\b(?:rumou?red|expected|could return|might|(?-i:may)|unconfirmed|wishlist)\b", "unconfirmed",
     "Who might return?"),
]

# --------------------------------------------------------------------------- platforms

# Canonical platform -> spellings in text. Longer spellings are tried first, so 'BBC One' beats 'BBC'.
PLATFORMS: dict[str, tuple[str, ...]] = {
    "Netflix": ("Netflix",),
    "Apple TV+": ("Apple TV+", "Apple TV Plus", "AppleTV+", "Apple TV"),
    "Disney+": ("Disney+", "Disney Plus", "DisneyPlus", "Disney+ Hotstar"),
    "Hulu": ("Hulu",),
    "HBO Max": ("HBO Max",),
    "Max": ("Max",),
    "HBO": ("HBO",),
    "Prime Video": ("Prime Video", "Amazon Prime Video", "Amazon Prime", "Amazon Video", "Prime"),
    "Peacock": ("Peacock",),
    "Paramount+": ("Paramount+", "Paramount Plus", "Paramount Network"),
    "Crunchyroll": ("Crunchyroll",),
    "Funimation": ("Funimation",),
    "HIDIVE": ("HIDIVE",),
    "Viki": ("Viki", "Rakuten Viki"),
    "Starz": ("Starz",),
    "Showtime": ("Showtime",),
    "Cinemax": ("Cinemax",),
    "AMC+": ("AMC+", "AMC Plus"),
    "AMC": ("AMC",),
    "FX": ("FX", "FX on Hulu"),
    "Freeform": ("Freeform",),
    "Syfy": ("Syfy", "SyFy"),
    "USA Network": ("USA Network",),
    "TNT": ("TNT",),
    "TBS": ("TBS",),
    "Lifetime": ("Lifetime",),
    "Hallmark": ("Hallmark Channel", "Hallmark"),
    "MTV": ("MTV",),
    "Comedy Central": ("Comedy Central",),
    "Adult Swim": ("Adult Swim",),
    "Cartoon Network": ("Cartoon Network",),
    "Nickelodeon": ("Nickelodeon",),
    "Disney Channel": ("Disney Channel",),
    "NBC": ("NBC",),
    "CBS": ("CBS",),
    "ABC": ("ABC",),
    "Fox": ("Fox",),
    "The CW": ("The CW", "CW"),
    "PBS": ("PBS",),
    "Epix": ("Epix", "EPIX", "MGM+"),
    "Shudder": ("Shudder",),
    "BritBox": ("BritBox",),
    "Acorn TV": ("Acorn TV",),
    "BBC One": ("BBC One", "BBC1"),
    "BBC Two": ("BBC Two", "BBC2"),
    "BBC Three": ("BBC Three", "BBC3"),
    "BBC Four": ("BBC Four",),
    "BBC iPlayer": ("BBC iPlayer", "iPlayer"),
    "BBC": ("BBC",),
    "ITV": ("ITV", "ITV1", "ITVX", "ITV2"),
    "Channel 4": ("Channel 4", "All 4", "E4"),
    "Channel 5": ("Channel 5",),
    "Sky": ("Sky Atlantic", "Sky One", "Sky Max", "Sky"),
    "Stan": ("Stan",),
    "Nine": ("9 Network", "Nine Network", "Channel 9", "9Now"),
    "Seven": ("Seven Network", "Channel 7", "7plus"),
    "ABC iview": ("ABC iview", "iview"),
    "Binge": ("Binge",),
    "CBC": ("CBC", "CBC Gem"),
    "Crave": ("Crave",),
    "Global": ("Global TV",),
    "RTÉ": ("RTÉ", "RTE"),
    "tvN": ("tvN",),
    "JTBC": ("JTBC",),
    "KBS": ("KBS2", "KBS1", "KBS"),
    "SBS": ("SBS",),
    "MBC": ("MBC",),
    "ENA": ("ENA",),
    "OCN": ("OCN",),
    "TVING": ("TVING", "Tving"),
    "Wavve": ("Wavve",),
    "Coupang Play": ("Coupang Play",),
    "iQIYI": ("iQIYI", "iQiyi", "iQiYi"),
    "Tencent Video": ("Tencent Video", "WeTV"),
    "Youku": ("Youku",),
    "Mango TV": ("Mango TV",),
    "Bilibili": ("Bilibili",),
    "TV Tokyo": ("TV Tokyo",),
    "Fuji TV": ("Fuji TV",),
    "NHK": ("NHK",),
    "Tokyo MX": ("Tokyo MX", "TOKYO MX"),
    "Hotstar": ("Hotstar",),
    "JioCinema": ("JioCinema", "JioHotstar"),
    "ZEE5": ("ZEE5", "Zee5"),
    "SonyLIV": ("SonyLIV", "Sony LIV"),
    "Aha": ("Aha",),
    "Tubi": ("Tubi",),
    "Roku Channel": ("Roku Channel",),
    "YouTube": ("YouTube Premium", "YouTube Red"),
}
# Generic words that name a platform only with a capital and beside a release or channel word.
AMBIGUOUS_PLATFORMS = frozenset({"Max", "Fox", "Stan", "Prime", "Sky", "Global", "Binge", "Aha", "Crave",
                                 "Lifetime", "Hallmark", "ENA", "CW", "Apple TV", "Nine", "Seven", "E4", "ABC",
                                 "Shudder"})
# A dedicated channel for the platform in the text ("exclusively on", "streaming on", "airs on", "the X show").
PLATFORM_CONTEXT = (r"\b(?:on|to|via|at|exclusively|stream\w*|air\w*|broadcast\w*|premier\w*|releas\w*|launch\w*|"
                    r"arriv\w*|debut\w*|drop\w*|available|renew\w*|cancel\w*|order\w*|network|streamer|service|"
                    r"platform|channel|original|series|show|drama|comedy|broadcaster|commissioned|home)\b")
THEATRICAL = (r"\b(?:in|into|to|hit(?:s|ting)?|enter(?:s|ing)?|open(?:s|ing)?|arriv\w*|releas\w*|debut\w*|"
              r"land\w*|bow\w*|screen\w*|play\w*|heads? to|head(?:ing|ed)? to|coming to|come to|exclusively in)"
              r"\s+(?:\w+\s+){0,3}?(?:theat(?:er|re)s|cinemas?|movie theat(?:er|re)s|multiplexes|the big screen|"
              r"the screens|screens)\b|\btheatrical(?:ly)?\b|\bbox office release\b|\bin cinemas\b|"
              r"\bon the big screen\b")
# Tokens of platform names that cut a capitalised run ('Netflix Renews ...'): only unambiguous ones.
PLATFORM_WORDS = frozenset("""netflix hulu disney+ hbo bbc itv itvx peacock paramount+ crunchyroll funimation
starz showtime cinemax amc syfy mtv nbc cbs pbs epix britbox iplayer tvn jtbc kbs sbs mbc ocn tving wavve iqiyi
youku bilibili nhk hotstar zee5 sonyliv tubi apple+ cw disney amazon apple warner universal lionsgate sony marvel
pixar dreamworks a24 searchlight mgm blumhouse toho kadokawa aniplex crunchyroll""".split())

# --------------------------------------------------------------------------- renewal, production, trailer

# Each row: (pattern, value, example). Later statements beat earlier ones; a definite one beats 'unconfirmed'.
RENEWAL: list[tuple[str, str, str]] = [
    (r"(?:has|have|had|was|were|been|is|are|officially|now|reportedly)\s+(?:officially\s+|reportedly\s+)?"
     r"(?:been\s+)?(?:cancell?ed|axed|scrapped|pulled the plug)|cancels|axes|pulls? the plug|"
     r"(?:will not|won't|isn't|is not|not) (?:be )?(?:returning|return|coming back|continu\w*|be back)"
     r"(?: for (?:a|another|its)?\s*(?:\w+ )?season)|"
     r"(?:wasn't|was not|won't be|will not be|isn't|is not) renewed|no (?:season|series) \d+|"
     r"ended after|concluded after", "cancelled",
     "Nightfall has been cancelled after two seasons"),
    (r"renew(?:s|ed|ing)?\b(?! or not)|greenlit|green-lit|greenlights?|picked up for|gets? (?:a )?(?:second|third|"
     r"fourth|fifth|new|another) season|ordered (?:a |an )?(?:second|third|fourth|fifth|new|another|\d+ more)|"
     r"(?:(?:will|is set to|is going to) return|returns|is returning) for (?:a|another|its) (?:\w+ )?season|"
     r"confirmed (?:a |its )?(?:second|third|"
     r"fourth|fifth|sixth|new|next) season|(?:season|series) \d+ (?:is|was|has been) (?:officially )?"
     r"(?:confirmed|ordered|announced)|is in the works|early renewal|(?:has|have) been (?:officially )?confirmed "
     r"for (?:a )?(?:second|third|new|another) season|coming back for (?:a |another |more)|"
     r"announcement of the (?:second|third|fourth|fifth|new) season|ordered (?:just )?\w+ episodes", "renewed",
     "Nightfall has been renewed for a third season"),
    (r"remains to be seen|(?:not|n't) (?:yet )?(?:been )?renewed|yet to (?:be )?renew\w*|no word (?:yet )?on|"
     r"(?:whether|if) (?:or not )?[^.]{0,40}(?:renew|return|season)|not (?:yet )?(?:been )?(?:officially )?"
     r"(?:confirmed|announced)(?: a| for)? (?:a |another )?(?:second|third|new|next)? ?season|undecided|"
     r"on the bubble|fate (?:is )?(?:still )?unknown", "unconfirmed", "No word yet on whether Nightfall returns"),
]
# Negations that cancel a cancellation: "has not been cancelled".
NOT_CANCELLED = r"\b(?:not|n't|never)\s+(?:\w+\s+){0,2}(?:cancell?ed|axed)|\bun-?cancel\w*"

PRODUCTION: list[tuple[str, str, str]] = [
    ("released", r"\b(?:is|are) (?:now )?(?:streaming|available to stream|out now)\b|\bpremiered (?:on|last)\b",
     "Season 2 is now streaming"),
    ("post-production", r"\b(?:wrapped|wraps|has wrapped|have wrapped|wrapping|wrapped up|finished|completed|"
     r"completes|ended|concluded)\s+(?:its\s+|principal\s+|the\s+)?(?:\w+\s+)?(?:filming|shooting|production|"
     r"photography|the shoot)|\b(?:filming|shooting|production|photography|the shoot)\b[^.]{0,60}?\b(?:wrapped|"
     r"has wrapped|was wrapped|is complete|was complete|completed|is done|has finished|finished|ended|concluded|"
     r"came to an end)\b|\b(?:in|into|entered|entering|undergoing) post-?production\b|\bpost-?production (?:is|"
     r"has) (?:underway|begun|started)|\bfinished filming\b|\bfully filmed\b|\bfilming wrap\b|\bwrap(?:ped)? "
     r"(?:on|up)\b", "Nightfall wrapped filming in May"),
    ("filming", r"\b(?:is|are|was|were) (?:currently |now |already |still )?(?:filming|shooting|in production|"
     r"underway|rolling|on set)\b|\bcontinu\w* (?:filming|shooting|production)\b|\b(?:filming|shooting|"
     r"production|principal photography|cameras|the shoot|work)\b[^.]{0,90}?\b(?:is|are|has|have|had|was)? ?"
     r"(?:officially |quietly |finally |currently |now |already |been spotted |reportedly )?(?:underway|"
     r"under way|begun|began|started|commenced|kicked off|kicks off|resumed|rolling|got under way|got underway|"
     r"gets underway|getting underway|in full swing|starts today|started today|begins today|began today)\b|"
     r"\b(?:began|begun|begins|started|starts|kicked off|kicks off|commenced|resumed|is in|are in|entered|"
     r"has begun|have begun|has started|have started)\s+(?:\w+\s+)?(?:filming|shooting|production|principal "
     r"photography)\b|\bbooting ceremony\b|\bcameras (?:are )?rolling\b|\balready (?:in production|filming|"
     r"shooting)\b|\bis (?:currently )?being (?:filmed|shot)\b", "Filming began in Seoul"),
    ("development", r"\bproduction (?:on|for) [^.]{0,40}?\bwill (?:begin|start)\b",
     "Production on the new season will begin later this year"),
    ("pre-production", r"\bpre-?production\b|\bcasting (?:is|has) (?:underway|begun|started)\b|"
     r"\b(?:filming|shooting|principal photography|cameras)\b[^.]{0,90}?\b(?:will|is set to|is scheduled to|"
     r"is expected to|are set to|set to|slated to|scheduled to|is about to|about to|poised to|due to)\s+"
     r"(?:begin|start|commence|kick off|get underway|roll)\b|\b(?:will|set to|slated to|about to|scheduled to)\s+"
     r"(?:begin|start|commence)\s+(?:filming|shooting|production)\b|\bscheduled to start shooting\b",
     "Filming will begin in two months"),
    ("development", r"\b(?:is|are) in (?:the works|development|early development|active development)\b|"
     r"\bin development\b|\bwriting (?:has|is) (?:begun|started|underway)\b|\bwriters'? room\b|"
     r"\bscripts? (?:for|is|are) (?:being written|in (?:preparation|progress))", "The new season is in development"),
]
# Claims about what would/could happen are not stages.
HYPOTHETICAL = r"\b(?:might|could|would|if|typically|usually|whether|hope|hoping|once|until|before)\b"

TRAILER: list[tuple[str, str, str]] = [
    (r"\b(?:no|not (?:yet )?(?:a|any)|without an?)\s+(?:official\s+)?(?:trailer|teaser)|\b(?:trailer|teaser)s?\s+"
     r"(?:has|have|is|are)(?:n't| not)\b|\byet to (?:release|drop|share) (?:a|any|the) (?:trailer|teaser)|"
     r"\b(?:bring|bringing|expect|expected|will (?:get|see|release|drop)|upcoming|later|over the summer|probably)"
     r"\b[^.]{0,40}\b(?:trailers?|teasers?)", "none", "There is no trailer yet"),
    (r"\bteaser(?! poster| image| visual| art| photo| still)(?: trailer)?\b[^.]{0,60}?\b(?:released|dropped|"
     r"unveiled|arrived|debuted|revealed|out|shared|"
     r"showed|shows)\b|\b(?:released|dropped|unveiled|shared|debuted|revealed) (?:a |an |the |its )?(?:first |new |"
     r"official )?teaser\b|\bfirst teaser\b|\bin the (?:first |new |official )?teaser\b", "teaser",
     "A teaser trailer was released in May"),
    (r"\b(?:released|dropped|unveiled|shared|debuted|revealed|launched) (?:a |an |the |its )?(?:first |new |"
     r"official |full |final )?trailer\b|\btrailer\b[^.]{0,40}?\b(?:is|was|has been|has|have) (?:now |finally )?"
     r"(?:out|here|released|arrived|dropped|landed|debuted)\b|\bwatch the (?:new |official |first |full )?"
     r"trailer\b|\b(?:new|official|first|full|final) trailer\b|\btake a look at the trailer\b|\btrailer "
     r"(?:showcases|reveals|shows|teases|offers)|\bdebut trailer\b", "released", "The official trailer is out now"),
]
