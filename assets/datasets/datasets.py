#!/usr/bin/env python3
# The work behind build_icons.sh, build_speech.sh, build_piano.sh and build_melody.sh:
# rasterising Debian's icon themes, speaking generated sentences and playing generated music,
# each output recorded in SOURCES.tsv with package and licence.
# Standard library only; the shell scripts check the Debian packages before calling this.
import base64
import collections
import concurrent.futures
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

# ---- Debian package facts ----------------------------------------------------------------


def package_version(pkg):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def package_licence(pkg):
    """The licence of the package's files, read from /usr/share/doc/PKG/copyright: the
    'Files: *' stanza of a machine-readable file, else the GPL version its text names."""
    path = "/usr/share/doc/%s/copyright" % pkg
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return "unknown (no %s)" % path
    for stanza in text.split("\n\n"):
        lines = stanza.strip().splitlines()
        if lines and lines[0].strip() == "Files: *":
            for line in lines:
                if line.startswith("License:"):
                    return line.split(":", 1)[1].strip()
    flat = " ".join(text.split())
    if "under the MIT license" in flat:  # fluid-soundfont-gm: the FluidR3 README's words
        return "MIT"
    if "GNU General Public License" in flat:
        for v in ("3", "2"):
            if "either version %s of the License, or" % v in flat:
                return "GPL-%s+" % v
            if "version %s" % v in flat:
                return "GPL-%s" % v
    return "see %s" % path


# The icon themes' packages are those of ICON_THEMES below, in its order, then the renderer.
PACKAGES = {"icons": ["papirus-icon-theme", "oxygen-icon-theme", "paper-icon-theme",
                      "numix-icon-theme", "breeze-icon-theme", "moka-icon-theme",
                      "faenza-icon-theme", "tango-icon-theme", "adwaita-icon-theme",
                      "elementary-xfce-icon-theme", "lxde-icon-theme", "librsvg2-bin"],
            "speech": ["espeak-ng", "sox"],
            "piano": ["fluidsynth", "fluid-soundfont-gm", "sox"],
            "melody": ["fluidsynth", "fluid-soundfont-gm", "sox"]}


def require(kind):
    """Exits 1 with the apt-get line when a Debian package the data set needs is missing."""
    missing = []
    for pkg in PACKAGES[kind]:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True,
                             text=True)
        if "install ok installed" not in out.stdout:
            missing.append(pkg)
    if missing:
        sys.exit("missing Debian packages; install them with: sudo apt-get install " +
                 " ".join(missing))


def fresh_splits(outdir):
    """Empty OUTDIR/train and OUTDIR/unseen, made anew."""
    for d in ("train", "unseen"):
        shutil.rmtree(os.path.join(outdir, d), ignore_errors=True)
        os.makedirs(os.path.join(outdir, d))


def write_tsv(path, header, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(str(x).replace("\t", " ").replace("\n", " ") for x in r) + "\n")


def pick_unseen(names, count, salt):
    """A deterministic choice of `count` names: the lowest SHA-256 of salt + name."""
    ranked = sorted(names, key=lambda n: hashlib.sha256((salt + n).encode()).hexdigest())
    return set(ranked[:count])


# ---- icons -------------------------------------------------------------------------------

ICON_SIZE = 32
ICONS_ROOT = "/usr/share/icons"
CATEGORIES = ("apps", "places", "mimetypes", "devices")
# The first version of the set had Papirus and Oxygen apps/places/mimetypes only. Those are
# listed first and the unseen 40 are still drawn from them alone, so that choice (and the
# prompts in assets/prompts/icons) stays the same when themes are added.
LEGACY_POOL = (("papirus", "oxygen"), ("apps", "places", "mimetypes"))
UNSEEN_ICONS = 40
UNSEEN_SALT = "attnscope-icons-unseen"
CAP_SALT = "attnscope-icons-cap"
TRAIN_CAP = 2500         # icons per training theme at most, so Papirus does not dominate
UNSEEN_THEME_CAP = 300   # icons per held-out theme at most
# Papirus draws its 71 folder shapes in 26 colours; only the default (blue) is kept, or a
# third of the set would be recoloured folders.
PAPIRUS_OTHER_COLOURS = {
    "adwaita", "black", "bluegrey", "breeze", "brown", "carmine", "custom", "cyan", "darkcyan",
    "deeporange", "green", "grey", "indigo", "magenta", "nordic", "orange", "palebrown",
    "paleorange", "pink", "red", "teal", "violet", "white", "yaru", "yellow"}
# Paper (folder-red, folder_color_red) and Breeze (folder-red) recolour their default folder;
# Numix ships each place in 11 colours as default-folder-music, blue-folder-music, ...
FOLDER_COLOURS = {"black", "blue", "brown", "cyan", "green", "grey", "magenta", "orange", "pink",
                  "purple", "red", "violet", "yellow"}
NUMIX_OTHER_COLOURS = {"blue", "brown", "custom", "green", "grey", "orange", "pink", "purple",
                       "red", "yellow"}


def papirus_recolour(cat, base):
    return cat == "places" and bool(PAPIRUS_OTHER_COLOURS & set(base.split("-")))


def paper_recolour(cat, base):
    """Paper's recoloured folders, and its calendar-COLOUR-DAY in red, purple and blue (no
    default): only the blue days are kept."""
    parts = base.replace("_", "-").split("-")
    if cat == "places":
        return parts[0] == "folder" and bool(FOLDER_COLOURS & set(parts[1:]))
    return cat == "apps" and len(parts) == 3 and parts[0] == "calendar" and \
        parts[1] in ("red", "purple") and parts[2].isdigit()


def breeze_recolour(cat, base):
    return cat == "places" and base.startswith("folder-") and base[len("folder-"):] in FOLDER_COLOURS


def numix_recolour(cat, base):
    return cat == "places" and base.split("-")[0] in NUMIX_OTHER_COLOURS


# name, Debian package, "train" or "unseen-theme", the folders of a category ({cat}, under
# /usr/share/icons) in order of preference (the 32 px one first; scalable SVGs only where a
# theme has no 32 px folder for that category), a function naming recoloured duplicates, and
# folder names that differ from the category.
IconTheme = collections.namedtuple("IconTheme", "name package split dirs recolour aliases")
ICON_THEMES = [
    IconTheme("papirus", "papirus-icon-theme", "train", ("Papirus/32x32/{cat}",),
              papirus_recolour, {}),
    IconTheme("oxygen", "oxygen-icon-theme", "train", ("oxygen/base/32x32/{cat}",), None, {}),
    IconTheme("paper", "paper-icon-theme", "train", ("Paper/32x32/{cat}", "Paper/scalable/{cat}"),
              paper_recolour, {}),
    IconTheme("numix", "numix-icon-theme", "train", ("Numix/32/{cat}", "Numix/scalable/{cat}"),
              numix_recolour, {}),
    IconTheme("breeze", "breeze-icon-theme", "train", ("breeze/{cat}/32",), breeze_recolour, {}),
    IconTheme("moka", "moka-icon-theme", "train", ("Moka/32x32/{cat}",), None, {}),
    IconTheme("faenza", "faenza-icon-theme", "train", ("Faenza/{cat}/32", "Faenza/{cat}/scalable"),
              None, {}),
    # Held out whole: four styles unlike each other and unlike the training themes (Tango's
    # 2005 shaded style; GNOME's flat Adwaita 43 full-colour PNGs; elementary's; LXDE's glossy
    # nuoveXT2). MATE (whose copyright names the Tango artists) and gnome-icon-theme are drawn
    # in Tango's style, so neither is used for training.
    IconTheme("tango", "tango-icon-theme", "unseen-theme",
              ("Tango/32x32/{cat}", "Tango/scalable/{cat}"), None, {}),
    IconTheme("adwaita", "adwaita-icon-theme", "unseen-theme",
              ("Adwaita/32x32/{cat}", "Adwaita/scalable/{cat}"), None, {}),
    IconTheme("elementary-xfce", "elementary-xfce-icon-theme", "unseen-theme",
              ("elementary-xfce/{cat}/32",), None, {"mimetypes": "mimes"}),
    IconTheme("nuovext2", "lxde-icon-theme", "unseen-theme", ("nuoveXT2/32x32/{cat}",), None, {}),
]
ICON_TOOLS = ["librsvg2-bin"]
assert PACKAGES["icons"] == [t.package for t in ICON_THEMES] + ICON_TOOLS


def icon_sources():
    """(output stem, source path, theme, category) for every regular icon file, the first
    version's pool first, then by theme and category, each folder sorted; symlinks are aliases
    of files already listed. Also per theme the counts of files skipped: {theme: {why: n}}."""
    groups = [(t, c) for t in ICON_THEMES for c in CATEGORIES]
    legacy = [g for g in groups if g[0].name in LEGACY_POOL[0] and g[1] in LEGACY_POOL[1]]
    groups = sorted(groups, key=lambda g: g not in legacy)  # stable: legacy first, in order
    out, skipped = [], {t.name: collections.Counter() for t in ICON_THEMES}
    for theme, cat in groups:
        folder = theme.aliases.get(cat, cat)
        d = next((os.path.join(ICONS_ROOT, p.format(cat=folder)) for p in theme.dirs
                  if os.path.isdir(os.path.join(ICONS_ROOT, p.format(cat=folder)))), None)
        if d is None:
            continue
        stems = set()
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            base, ext = os.path.splitext(name)
            if ext not in (".svg", ".png") or not os.path.isfile(p):
                continue
            if os.path.islink(p):
                skipped[theme.name]["symlink"] += 1
            elif base.endswith(".symbolic"):  # Adwaita's one-colour symbolic PNGs
                skipped[theme.name]["symbolic"] += 1
            elif theme.recolour and theme.recolour(cat, base):
                skipped[theme.name]["recoloured"] += 1
            elif ext == ".png" and png_size(p) != (ICON_SIZE, ICON_SIZE):
                skipped[theme.name]["not %d px" % ICON_SIZE] += 1  # a smaller PNG in a 32 folder
            elif base in stems:  # the same name as .png and .svg: the first is kept
                skipped[theme.name]["same name"] += 1
            else:
                stems.add(base)
                out.append(("%s-%s-%s" % (theme.name, cat, base), p, theme, cat))
    return out, skipped


_COPYRIGHT = {}


def copyright_stanzas(pkg):
    """[(Files patterns, licence)] of a machine-readable /usr/share/doc/PKG/copyright, in order."""
    if pkg not in _COPYRIGHT:
        stanzas = []
        try:
            text = open("/usr/share/doc/%s/copyright" % pkg, encoding="utf-8",
                        errors="replace").read()
        except OSError:
            text = ""
        for para in text.split("\n\n"):
            fields, key = {}, None  # field: [first line, continuation lines...]
            for line in para.splitlines():
                if line[:1] in (" ", "\t") and key:
                    fields[key].append(line.strip())
                elif ":" in line:
                    key, value = line.split(":", 1)
                    key = key.strip()
                    fields[key] = [value.strip()]
            if "Files" in fields and "License" in fields and fields["License"][0]:
                # Files lists patterns on all its lines; License's first line is the short name
                stanzas.append((" ".join(fields["Files"]).split(), fields["License"][0]))
        _COPYRIGHT[pkg] = stanzas
    return _COPYRIGHT[pkg]


def glob_match(pattern, path):
    """A copyright-format Files pattern: * matches any characters, / included; ? one."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, path) is not None


def file_licence(pkg, path):
    """The licence of one installed file: the last copyright stanza whose Files patterns match
    its path under /usr/share/icons (or the .svg it was rendered from), or a source file of
    the same name under src/ (Adwaita, Paper); the package's 'Files: *' licence otherwise."""
    rel = os.path.relpath(path, ICONS_ROOT)
    base, ext = os.path.splitext(rel)
    names = {rel, base + ".svg", base + ".png"}
    stem = os.path.basename(base)
    found = None
    for patterns, lic in copyright_stanzas(pkg):
        for pat in patterns:
            src_stem = os.path.splitext(os.path.basename(pat))[0]
            if any(glob_match(pat, n) for n in names) or \
                    (pat.startswith("src/") and "*" not in pat and src_stem == stem):
                found = lic
    return found or package_licence(pkg)


def png_size(path):
    """(width, height) from a PNG's header, or None."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def png_is_rgb(path, size):
    """True when the PNG's header says size x size, 8-bit RGB (colour type 2)."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return False
    w = int.from_bytes(head[16:20], "big")
    h = int.from_bytes(head[20:24], "big")
    return w == size and h == size and head[24] == 8 and head[25] == 2


def render_icon(src, dst, tmpdir):
    """Rasterises src (SVG, or PNG wrapped in an SVG) to a size x size RGB PNG on white."""
    svg = src
    if src.endswith(".png"):
        data = base64.b64encode(open(src, "rb").read()).decode()
        svg = os.path.join(tmpdir, os.path.basename(dst) + ".svg")
        with open(svg, "w") as f:
            f.write('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/'
                    'xlink" width="%d" height="%d"><image width="%d" height="%d" xlink:href='
                    '"data:image/png;base64,%s"/></svg>' % ((ICON_SIZE,) * 4 + (data,)))
    r = subprocess.run(["rsvg-convert", "-w", str(ICON_SIZE), "-h", str(ICON_SIZE),
                        "--background-color=white", "-f", "png", "-o", dst, svg],
                       capture_output=True)
    return r.returncode == 0 and png_is_rgb(dst, ICON_SIZE)


def build_icons(outdir):
    """OUTDIR/train (training themes), OUTDIR/unseen (40 of the first version's pool, kept
    for prompts), OUTDIR/unseen-themes/THEME (held-out themes, whole up to a cap) and
    SOURCES.tsv with a row per output file."""
    sources, skipped = icon_sources()
    render = os.path.join(outdir, ".render")
    for d in ("train", "unseen", "unseen-themes", ".render"):
        shutil.rmtree(os.path.join(outdir, d), ignore_errors=True)
        os.makedirs(os.path.join(outdir, d))
    with tempfile.TemporaryDirectory() as tmp, \
            concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        ok = list(pool.map(lambda s: render_icon(s[1], os.path.join(render, s[0] + ".png"), tmp),
                           sources))
    names = [t.name for t in ICON_THEMES]
    count = {t: collections.Counter() for t in names}
    # Dedupe identical rasters (rsvg-convert's PNG encoding is deterministic, so equal bytes
    # means equal pixels): the first in the order above is kept, so an icon of a held-out
    # theme that equals a training icon is dropped from the held-out theme. A package's
    # copyright can name different licences for identical copies (Paper: folder.png
    # CC-BY-SA-4.0, its copy gtk-directory.png CC-BY-SA-3.0); the kept file lists them all.
    seen, kept, licences = {}, [], {}
    for (stem, src, theme, cat), good in zip(sources, ok):
        count[theme.name]["files"] += 1
        if not good:
            count[theme.name]["failed"] += 1
            print("failed to render: %s" % src, file=sys.stderr)
            continue
        digest = hashlib.sha256(open(os.path.join(render, stem + ".png"), "rb").read()).digest()
        lic = file_licence(theme.package, src)
        if digest in seen:
            first, first_stem = seen[digest]
            count[theme.name]["duplicate" if first.name == theme.name else
                              "duplicate of " + ("training" if first.split == "train" else
                                                 "held-out") + " theme"] += 1
            if first.package == theme.package:
                licences[first_stem].add(lic)
            continue
        seen[digest] = theme, stem
        licences[stem] = {lic}
        kept.append((stem, src, theme, cat))
    legacy = [k[0] for k in kept if k[2].name in LEGACY_POOL[0] and k[3] in LEGACY_POOL[1]]
    unseen = pick_unseen(legacy, UNSEEN_ICONS, UNSEEN_SALT)
    chosen = set()  # stems written to train/ or unseen-themes/, after the per-theme caps
    for t in ICON_THEMES:
        stems = [k[0] for k in kept if k[2] is t and k[0] not in unseen]
        cap = TRAIN_CAP if t.split == "train" else UNSEEN_THEME_CAP
        picked = pick_unseen(stems, cap, CAP_SALT) if len(stems) > cap else set(stems)
        count[t.name]["over the cap"] = len(stems) - len(picked)
        chosen |= picked
    facts = {t.package: package_version(t.package) for t in ICON_THEMES}
    facts.update({p: package_version(p) for p in ICON_TOOLS})
    rows = []
    for stem, src, theme, cat in kept:
        if stem in unseen:
            split, rel = "unseen", os.path.join("unseen", stem + ".png")
        elif stem in chosen:
            split = theme.split
            rel = os.path.join("train", stem + ".png") if split == "train" else \
                os.path.join("unseen-themes", theme.name, stem + ".png")
        else:
            continue
        count[theme.name][split] += 1
        os.makedirs(os.path.dirname(os.path.join(outdir, rel)), exist_ok=True)
        os.replace(os.path.join(render, stem + ".png"), os.path.join(outdir, rel))
        rows.append((rel, src, theme.package, facts[theme.package],
                     "; ".join(sorted(licences[stem])), split, theme.name))
    shutil.rmtree(render)
    write_tsv(os.path.join(outdir, "SOURCES.tsv"),
              ("output", "source", "package", "version", "licence", "split", "theme"), rows)
    cols = ("files", "failed", "duplicate", "duplicate of training theme",
            "duplicate of held-out theme", "over the cap", "train", "unseen", "unseen-theme")
    print("\t".join(("theme", "package", "version", "skipped") + cols))
    for t in ICON_THEMES:
        print("\t".join([t.name, t.package, facts[t.package],
                         ",".join("%s %d" % kv for kv in sorted(skipped[t.name].items())) or "-"] +
                        [str(count[t.name][c]) for c in cols]))
    total = {c: sum(count[t][c] for t in names) for c in cols}
    print("\t".join(["total", "", "", ""] + [str(total[c]) for c in cols]))
    print("%d icon files, %d failed to render, %d duplicates dropped, %d over the caps: %d in "
          "%s/train, %d in %s/unseen, %d in %s/unseen-themes (%s; rsvg-convert from "
          "librsvg2-bin %s)" %
          (total["files"], total["failed"], sum(total[c] for c in cols[2:5]),
           total["over the cap"], total["train"], outdir, total["unseen"], outdir,
           total["unseen-theme"], outdir,
           ", ".join("%s %d" % (t.name, count[t.name]["unseen-theme"]) for t in ICON_THEMES
                     if t.split == "unseen-theme"), facts["librsvg2-bin"]))


# ---- speech ------------------------------------------------------------------------------

# Sentences are generated from these word lists (written for this project) by a seeded
# generator, so the text carries no third-party licence.
SUBJECTS = ["the old man", "a young girl", "my neighbour", "the teacher", "our captain",
            "a tired farmer", "the little dog", "her brother", "the quiet student", "a stranger",
            "the baker", "his grandmother", "the doctor", "a small boy", "the pilot",
            "the red fox", "an artist", "the gardener", "my friend", "the driver"]
VERBS = ["found", "painted", "carried", "watched", "opened", "followed", "cleaned", "counted",
         "forgot", "borrowed", "repaired", "described", "noticed", "lifted", "visited",
         "remembered", "sold", "measured", "pushed", "answered"]
OBJECTS = ["a wooden box", "the broken window", "seven green apples", "the long letter",
           "an empty bottle", "the heavy door", "a paper boat", "the silver key",
           "twelve blue stones", "the morning train", "a warm loaf of bread", "the garden gate",
           "an old map", "the yellow kite", "a pair of boots", "the last question",
           "three white candles", "the kitchen table", "a basket of eggs", "the village clock"]
PLACES = ["near the river", "in the evening", "behind the school", "after the storm",
          "before breakfast", "at the market", "on the hill", "under the bridge",
          "during the winter", "by the sea", "in the dark", "at noon", "beside the road",
          "in the forest", "on a Sunday"]
ADVERBS = ["slowly", "quietly", "carefully", "again", "suddenly", "happily", "once more",
           "without a word", "twice", "at last"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "eleven", "twelve", "twenty", "forty", "a hundred"]

# English voices of espeak-ng with variants: accents x male/female/other timbres.
VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
          "en-029", "en-us-nyc"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt",
            "croak", "whisper"]


def sentence(rng):
    s, v, o, p = (rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS),
                  rng.choice(PLACES))
    form = rng.randrange(6)
    if form == 0:
        text = "%s %s %s %s." % (s, v, o, p)
    elif form == 1:
        text = "%s, %s %s %s %s." % (p, s, rng.choice(ADVERBS), v, o)
    elif form == 2:
        text = "Did %s really see %s %s?" % (s, o, p)
    elif form == 3:
        text = "%s %s %s, and then %s %s." % (s, v, o, rng.choice(VERBS), rng.choice(OBJECTS))
    elif form == 4:
        text = "%s %s %s %s times %s." % (s, v, o, rng.choice(NUMBERS), p)
    else:
        text = "When %s %s %s, %s %s laughed." % (s, v, o, rng.choice(SUBJECTS),
                                                  rng.choice(["suddenly", "quietly", "happily"]))
    return text[0].upper() + text[1:]


def speak(text, voice, speed, pitch, rate, dst, tmpdir):
    """espeak-ng to a WAV at its own rate, then sox to mono 16-bit at `rate`."""
    raw = os.path.join(tmpdir, os.path.basename(dst) + ".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", raw, text],
                   check=True, capture_output=True)
    subprocess.run(["sox", "-D", raw, "-r", str(rate), "-c", "1", "-b", "16", dst], check=True,
                   capture_output=True)
    os.remove(raw)


def wav_seconds(path):
    r = subprocess.run(["soxi", "-D", path], capture_output=True, text=True)
    return float(r.stdout.strip() or 0)


def build_speech(outdir, rate, files=100, sentences_per_file=8, unseen=3):
    rng = random.Random(20261122)
    fresh_splits(outdir)
    jobs = []
    for i in range(files + unseen):
        voice = "%s+%s" % (rng.choice(VOICES), rng.choice(VARIANTS))
        speed, pitch = rng.randrange(120, 200, 10), rng.randrange(20, 81, 5)
        # The unseen clips are short (about three sentences) and spoken from fresh sentences.
        count = sentences_per_file if i < files else 3
        text = " ".join(sentence(rng) for _ in range(count))
        split = "train" if i < files else "unseen"
        jobs.append((os.path.join(split, "speech-%03d.wav" % i), voice, speed, pitch, text))
    with tempfile.TemporaryDirectory() as tmp, \
            concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda j: speak(j[4], j[1], j[2], j[3], rate, os.path.join(outdir, j[0]),
                                      tmp), jobs))
    facts = {p: (package_version(p), package_licence(p)) for p in ("espeak-ng", "sox")}
    rows, total = [], 0.0
    for rel, voice, speed, pitch, text in jobs:
        secs = wav_seconds(os.path.join(outdir, rel))
        if rel.startswith("train"):
            total += secs
        rows.append((rel, "espeak-ng -v %s -s %d -p %d; sox -D -r %d -c 1 -b 16" %
                     (voice, speed, pitch, rate), "espeak-ng", facts["espeak-ng"][0],
                     facts["espeak-ng"][1], "%.2f" % secs, text))
    write_tsv(os.path.join(outdir, "SOURCES.tsv"),
              ("output", "source", "package", "version", "licence", "seconds", "text"), rows)
    print("%d speech files, %.1f minutes, at %d Hz in %s/train; %d in %s/unseen (espeak-ng %s, "
          "sox %s)" % (files, total / 60, rate, outdir, unseen, outdir, facts["espeak-ng"][0],
                      facts["sox"][0]))


# ---- piano -------------------------------------------------------------------------------

# Short pieces written by a seeded generator (so the music carries no third-party licence):
# a melody on the major scale over a chord progression, as a Standard MIDI File, played by
# FluidSynth with the FluidR3 General MIDI sound font's Acoustic Grand Piano.
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
PROGRESSIONS = [[0, 4, 5, 3], [0, 3, 4, 0], [0, 5, 3, 4], [0, 3, 0, 4], [5, 3, 0, 4]]
RHYTHMS = [[1, 1, 1, 1], [2, 1, 1], [1, 1, 2], [2, 2], [0.5, 0.5, 1, 2], [1.5, 0.5, 2], [4],
           [1, 0.5, 0.5, 2], [3, 1]]
MAJOR = [0, 2, 4, 5, 7, 9, 11]


def vlq(n):
    """A MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def midi_file(notes, bpm, program=0, tpq=480):
    """Format-0 Standard MIDI File of notes (start beat, length in beats, key, velocity) on
    channel 0 with a General MIDI program (0: Acoustic Grand Piano, 79: Ocarina)."""
    events = []
    for start, length, key, vel in notes:
        events.append((round(start * tpq), 1, bytes([0x90, key, vel])))
        events.append((round((start + length * 0.95) * tpq), 0, bytes([0x80, key, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    us = round(60_000_000 / bpm)
    track = vlq(0) + bytes([0xFF, 0x51, 3]) + us.to_bytes(3, "big") + vlq(0) + bytes([0xC0, program])
    now = 0
    for tick, _, data in events:
        track += vlq(tick - now) + data
        now = tick
    track += vlq(tpq) + bytes([0xFF, 0x2F, 0])
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    return header + tpq.to_bytes(2, "big") + b"MTrk" + len(track).to_bytes(4, "big") + track


def piece(rng, seconds, chords=True):
    """(notes, bpm, description): a melody in a random major key over a repeated four-chord
    progression, a sustained triad under each bar (left out when not `chords`: the melody
    alone, one note at a time), about `seconds` long."""
    root, bpm = rng.randrange(12), rng.randrange(76, 133, 4)
    prog = rng.choice(PROGRESSIONS)
    bars = max(2, round(seconds / (4 * 60 / bpm)))
    notes, degree = [], rng.randrange(7, 12)  # melody degree, counted from the key's C4 octave
    for bar in range(bars):
        chord = prog[bar % 4]
        beat = 4 * bar
        for d in (chord, chord + 2, chord + 4) if chords else ():
            notes.append((beat, 4, 48 + root + 12 * (d // 7) + MAJOR[d % 7], rng.randrange(50, 70)))
        for length in rng.choice(RHYTHMS):
            degree = min(16, max(5, degree + rng.choice([-2, -1, -1, 0, 1, 1, 2, rng.randrange(-4, 5)])))
            notes.append((beat, length, 60 + root + 12 * (degree // 7) - 12 + MAJOR[degree % 7],
                          rng.randrange(70, 101)))
            beat += length
    names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
    return notes, bpm, "%s major, %d bpm, %d bars, %s %s" % (
        names[root], bpm, bars, "chords" if chords else "melody over",
        "-".join("I II III IV V VI VII".split()[c] for c in prog))


def play(midi, rate, dst, tmpdir):
    """FluidSynth renders the MIDI file at 22,050 Hz (reverb and chorus off), then sox mixes
    it to mono 16-bit at `rate`."""
    mid = os.path.join(tmpdir, os.path.basename(dst) + ".mid")
    raw = os.path.join(tmpdir, os.path.basename(dst) + ".raw.wav")
    with open(mid, "wb") as f:
        f.write(midi)
    subprocess.run(["fluidsynth", "-ni", "-R", "0", "-C", "0", "-g", "0.6", "-r", "22050",
                    "-F", raw, SOUNDFONT, mid], check=True, capture_output=True)
    subprocess.run(["sox", "-D", raw, "-r", str(rate), "-c", "1", "-b", "16", dst, "norm", "-3"],
                   check=True, capture_output=True)
    os.remove(raw)
    os.remove(mid)


def build_piano(outdir, rate, chords=True, program=0, files=100, seconds=30, unseen=3):
    """The piano set (a melody over chords) or, without `chords`, the melody set (melodies
    alone, other pieces, one note at a time, so that a waveform period repeats within a few
    milliseconds) on General MIDI `program` (0, the piano, unless asked)."""
    rng = random.Random(20261205 if chords else 20261206)
    fresh_splits(outdir)
    jobs = []
    stem = "piano" if chords else "melody"
    for i in range(files + unseen):
        notes, bpm, what = piece(rng, seconds if i < files else 8, chords)
        split = "train" if i < files else "unseen"
        jobs.append((os.path.join(split, "%s-%03d.wav" % (stem, i)), midi_file(notes, bpm, program), what))
    with tempfile.TemporaryDirectory() as tmp, \
            concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda j: play(j[1], rate, os.path.join(outdir, j[0]), tmp), jobs))
    facts = {p: (package_version(p), package_licence(p))
             for p in ("fluid-soundfont-gm", "fluidsynth", "sox")}
    rows, total = [], 0.0
    for rel, _, what in jobs:
        secs = wav_seconds(os.path.join(outdir, rel))
        if rel.startswith("train"):
            total += secs
        rows.append((rel, "generated piece (%s); fluidsynth -R 0 -C 0 -g 0.6 FluidR3_GM.sf2 "
                     "program %d; sox -D -r %d -c 1 -b 16 norm -3" % (what, program, rate),
                     "fluid-soundfont-gm", facts["fluid-soundfont-gm"][0],
                     facts["fluid-soundfont-gm"][1], "%.2f" % secs))
    write_tsv(os.path.join(outdir, "SOURCES.tsv"),
              ("output", "source", "package", "version", "licence", "seconds"), rows)
    print("%d %s files, %.1f minutes, at %d Hz in %s/train; %d in %s/unseen (fluidsynth %s, "
          "fluid-soundfont-gm %s)" % (files, stem, total / 60, rate, outdir, unseen, outdir,
                                      facts["fluidsynth"][0], facts["fluid-soundfont-gm"][0]))


if __name__ == "__main__":
    usage = ("usage: datasets.py icons OUTDIR | datasets.py speech OUTDIR RATE | "
             "datasets.py piano OUTDIR RATE | datasets.py melody OUTDIR RATE [GM-PROGRAM]   "
             "(RATE in Hz, e.g. 8000; GM-PROGRAM the General MIDI instrument, 0 = piano)")
    args = sys.argv[1:]
    program = 0
    if len(args) == 4 and args[0] == "melody" and args[3].isdigit() and int(args[3]) < 128:
        program = int(args.pop())
    if not args or args[0] not in PACKAGES or len(args) != (2 if args[0] == "icons" else 3) \
            or (len(args) == 3 and not args[2].isdigit()):
        print(usage, file=sys.stderr)
        sys.exit(2)
    require(args[0])
    os.makedirs(args[1], exist_ok=True)
    if args[0] == "icons":
        build_icons(args[1])
    elif args[0] == "speech":
        build_speech(args[1], int(args[2]))
    else:
        build_piano(args[1], int(args[2]), chords=args[0] == "piano", program=program)
