"""hubconf.py read with ast: entrypoints and the weight URL each one plainly uses;
nothing imported or run, and no guess where the URL is computed or several are used."""

from __future__ import annotations

from pathlib import Path

from securitynet.scrapers.github_hubconf import parse_hubconf

SOURCE = '''
"""Models."""
import os
from .nets import resnet56 as imported_entrypoint

dependencies = ["torch"]
BASE = "https://github.com/o/r/releases/download/v1/vgg11_bn-0ac2c6ef.pt"
model_urls: dict = {"resnet20": "https://github.com/o/r/releases/download/v1/resnet20-4118986f.pt",
                    "readme": "https://github.com/o/r/blob/main/README.md"}

def resnet20(pretrained=False):
    """ResNet-20.

    CIFAR-10."""
    return model_urls["resnet20"]

def vgg11_bn(pretrained=False):
    return BASE

def inline():
    return "https://example.org/weights/net.pth"

def computed(name):
    return model_urls[name]

def two():
    return BASE, model_urls["resnet20"]

def docs_only():
    return model_urls["readme"]

def _private():
    return BASE

os.system("echo this line is never run")
'''


def test_entrypoints_and_their_urls() -> None:
    eps = {e.name: e for e in parse_hubconf(SOURCE)}
    assert set(eps) == {"resnet20", "vgg11_bn", "inline", "computed", "two", "docs_only"}
    assert eps["resnet20"].url == "https://github.com/o/r/releases/download/v1/resnet20-4118986f.pt"
    assert eps["resnet20"].doc == "ResNet-20." and eps["resnet20"].line == 11
    assert eps["vgg11_bn"].url is not None and eps["vgg11_bn"].url.endswith("vgg11_bn-0ac2c6ef.pt")
    assert eps["inline"].url == "https://example.org/weights/net.pth"
    assert eps["computed"].url is None and "computed key" in (eps["computed"].note or "")
    assert eps["two"].url is None and eps["two"].note == "uses 2 weight URLs"
    assert eps["docs_only"].url is None  # a README link is not a weight URL


def test_a_file_that_does_not_parse_gives_nothing(tmp_path: Path) -> None:
    assert parse_hubconf("def broken(:\n") == []
    assert parse_hubconf(b"\xff\xfe not python") == []
    marker = tmp_path / "ran"
    parse_hubconf(f"open({str(marker)!r}, 'w').write('x')\ndef f():\n    return 1\n")
    assert not marker.exists()  # parsed, never executed
