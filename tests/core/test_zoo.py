"""The model zoo: the table's facts hang together, every entry's architecture loads with our
importers (files written in each source's own layout), fetching into the cache against a local
HTTP server, files given by hand, the ``models`` command, and the app-data folder."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import core
from core import zoo
from core.classes import ClassTable
from core.cli import main
from core.download import DownloadError
from core.generators import run_to_end
from core.paths import app_data_dir
from core.weights.formats import FORMATS
from http_fixture import Route, refused_url, serving
from reference_weights import model_keys, reference_dir, tsv_keys
from zoo_layouts import csail_pair, fill, mmseg_pspnet, resnet, semseg_pspnet

ENTRIES = zoo.entries()
BY_NAME = {e.name: e for e in ENTRIES}


@pytest.fixture()
def server():
    with serving() as state:
        yield state


@pytest.fixture()
def home(tmp_path, monkeypatch):
    folder = tmp_path / "home"
    monkeypatch.setenv("PSPNET_STUDIO_HOME", str(folder))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))
    return folder


# --- the table ---------------------------------------------------------------------------------------

def test_the_table_has_every_source_and_a_complete_record_per_entry():
    names = [e.name for e in ENTRIES]
    assert len(names) == len(set(names))
    assert {e.source for e in ENTRIES} == {"mmsegmentation", "CSAIL semantic-segmentation-pytorch",
                                           "semseg (the authors)", "torchvision"}
    assert {(e.architecture["depth"], e.dataset) for e in ENTRIES if e.source == "mmsegmentation"} == {
        (d, s) for d in (50, 101) for s in ("ADE20K", "Cityscapes", "PASCAL VOC 2012 + aug")}
    assert {e.architecture["depth"] for e in ENTRIES if e.source.startswith("CSAIL")} == {18, 50, 101}
    formats = {f.name for f in FORMATS} | {"csail-decoder"}
    for e in ENTRIES:
        raw = e.raw
        for key in ("name", "source", "dataset", "classes", "architecture", "results", "files", "licence",
                    "facts_from", "download"):
            assert raw.get(key) not in (None, "", []), (e.name, key)
        assert e.results and all(r.protocol for r in e.results), e.name
        for f in e.files:
            assert f.expect.get("format") in formats, (e.name, f.expect)
            assert f.expect.get("depth", e.architecture["depth"]) == e.architecture["depth"]
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256)
            assert f.sha256_prefix is None or re.fullmatch(r"[0-9a-f]{8,64}", f.sha256_prefix)
            if e.download == "direct":
                assert f.url and f.url.startswith(("https://", "http://")) and f.url.endswith("/" + f.file_name)
            else:
                assert f.url is None and e.page and e.how_to_get and f.path_on_page
        if e.task == "segmentation":
            table = ClassTable.builtin(e.class_table)
            assert len(table) == e.num_classes, e.name
            assert {r.protocol.split(" ")[0] for r in e.results} >= {"single-scale"}
        # a published checksum is the file name's hash suffix (mmseg's publish_model, torch.hub's convention)
        for f in e.files:
            if f.sha256_prefix:
                assert f.file_name.endswith(f"-{f.sha256_prefix}.pth")


def test_json_list_has_name_url_source_dataset(home, capsys):
    assert main(["models", "list", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in items] == [e.name for e in ENTRIES]
    for item in items:
        assert {"name", "url", "source", "dataset"} <= set(item)
        assert item["cached"] is False and item["paths"] is None
    csail = next(i for i in items if i["name"] == "csail-resnet50dilated-ppm-deepsup-ade20k")
    assert csail["url"].endswith("encoder_epoch_20.pth") and csail["urls"][1].endswith("decoder_epoch_20.pth")
    assert next(i for i in items if i["name"] == "semseg-pspnet50-ade20k")["url"] is None


def test_list_shows_scores_sizes_and_the_cache(home, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"mmseg-pspnet-r50-d8-ade20k\s+ADE20K \(150\)\s+42\.48 / 43\.44\s+not published\s+direct", out)
    assert re.search(r"torchvision-resnet50\s+ImageNet-1k \(1000\)\s+top-1 76\.13\s+97\.8 MB\s+direct", out)
    assert re.search(r"semseg-pspnet50-ade20k .* by hand", out)
    assert f"cache: {home / 'models'}" in out


def test_fetch_module_knows_the_zoo_file_names():
    from core.weights.fetch import BACKBONE_FILES

    for depth in (18, 34, 50, 101, 152):
        assert BY_NAME[f"torchvision-resnet{depth}"].files[0].file_name == BACKBONE_FILES[f"resnet{depth}"]


# --- every entry's architecture loads ---------------------------------------------------------------------

def write_in_source_layout(e: zoo.ZooEntry, folder: Path, k: int) -> list[Path]:
    """The entry's file(s) with random values, names and shapes as the source saves them."""
    depth, n = e.architecture["depth"], e.num_classes
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f.file_name for f in e.files]
    fmt = e.files[0].expect["format"]
    if fmt == "mmseg":
        names = list(ClassTable.builtin(e.class_table).names)
        torch.save({"meta": {"CLASSES": tuple(names), "PALETTE": [[i, i, i] for i in range(n)]},
                    "state_dict": fill(mmseg_pspnet(depth, n, k))}, paths[0])
    elif fmt == "semseg":
        state = {"module." + key: v for key, v in fill(semseg_pspnet(depth, n, k)).items()}
        torch.save({"epoch": 100, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, paths[0])
    elif fmt == "semseg-resnet-init":
        if e.source.startswith("CSAIL"):
            encoder, decoder = csail_pair(depth, n, k)
            torch.save(fill(encoder), paths[0])
            torch.save(fill(decoder, seed=1), paths[1])
        else:
            torch.save(fill(resnet(depth, stem="deep", k=k, fc=True)[0]), paths[0])
    elif fmt == "torchvision-resnet":
        torch.save(fill(resnet(depth, stem="plain", k=k, fc=True)[0]), paths[0])
    else:
        raise AssertionError(fmt)
    return paths


EXPECTED_FORMAT = {"mmsegmentation": "mmseg", "semseg (the authors)": "semseg",
                   "CSAIL semantic-segmentation-pytorch": "csail", "torchvision": "torchvision-resnet"}


@pytest.mark.parametrize("name", [e.name for e in ENTRIES])
def test_every_entry_loads_with_our_importers(name, tmp_path):
    e = BY_NAME[name]
    paths = write_in_source_layout(e, tmp_path, k=16)
    loaded = core.load_model(paths if len(paths) > 1 else paths[0])
    cfg = loaded.config
    fmt = EXPECTED_FORMAT[e.source] if e.task == "segmentation" else e.files[0].expect["format"]
    assert loaded.report.format == fmt
    assert cfg.depth == e.architecture["depth"] and cfg.stem == ("plain" if e.source == "torchvision" else "deep")
    assert cfg.align_corners == e.architecture.get("align_corners", cfg.align_corners)
    if e.task == "segmentation":
        assert cfg.num_classes == e.num_classes and not loaded.report.reinitialised
        assert cfg.head_channels == 512 // 16 and cfg.aux
        assert len(loaded.classes) == e.num_classes
    else:
        assert all(k.startswith("backbone.") for k in loaded.report.loaded)
    # the zoo's own check of what each file must read as accepts them
    for f, p in zip(e.files, paths):
        zoo.check_contents(e, f, p)


def test_the_layouts_are_the_sources_real_ones():
    """The layout writer reproduces the key lists and shapes of the official files."""
    if reference_dir() is None:
        pytest.skip("the reference key lists (shared/reference/) are not on this machine")
    ref = lambda keys: {name: tuple(shape) for name, shape, _ in keys}  # noqa: E731
    assert semseg_pspnet(50, 150) == ref(model_keys("semseg_pspnet50"))
    encoder, decoder = csail_pair(50, 150)
    assert encoder == ref(model_keys("csail_resnet50dilated_encoder"))
    assert decoder == ref(model_keys("csail_ppm_deepsup_decoder"))
    assert resnet(18, stem="plain", fc=True)[0] == ref(tsv_keys("keys_torchvision_resnet18.tsv"))
    assert resnet(50, stem="plain", fc=True)[0] == ref(tsv_keys("keys_torchvision_resnet50.tsv"))
    assert resnet(50, stem="deep", fc=True)[0] == ref(tsv_keys("keys_semseg_resnet50_v2_init.tsv"))


@pytest.mark.parametrize("name", ["mmseg-pspnet-r50-d8-ade20k", "csail-resnet18dilated-ppm-deepsup-ade20k",
                                  "torchvision-resnet18"])
def test_real_sized_files_load(name, tmp_path):
    e = BY_NAME[name]
    paths = write_in_source_layout(e, tmp_path, k=1)
    loaded = core.load_model(paths if len(paths) > 1 else paths[0])
    assert loaded.config.depth == e.architecture["depth"]
    if e.task == "segmentation":
        assert loaded.config.num_classes == e.num_classes and loaded.config.head_channels == 512
        x = torch.randn(1, 3, 33, 33)
        with torch.no_grad():
            out = loaded.model(x)
        assert out.main.shape == (1, e.num_classes, 33, 33) and torch.isfinite(out.main).all()


def test_check_contents_refuses_another_architecture(tmp_path):
    r50, r101 = BY_NAME["mmseg-pspnet-r50-d8-ade20k"], BY_NAME["mmseg-pspnet-r101-d8-ade20k"]
    path = write_in_source_layout(r50, tmp_path, k=16)[0]
    with pytest.raises(zoo.ZooError, match=r"not mmseg-pspnet-r101-d8-ade20k's checkpoint file: it holds a ResNet-50, "
                                           r"not the expected ResNet-101"):
        zoo.check_contents(r101, r101.files[0], path)
    voc = BY_NAME["mmseg-pspnet-r50-d8-voc12aug"]
    with pytest.raises(zoo.ZooError, match="150 classes, not the expected 21"):
        zoo.check_contents(voc, voc.files[0], path)
    semseg = BY_NAME["semseg-pspnet50-ade20k"]
    with pytest.raises(zoo.ZooError, match="reads as a mmseg checkpoint, semseg-pspnet50-ade20k is a semseg one"):
        zoo.check_contents(semseg, semseg.files[0], path)
    (tmp_path / "page.html").write_text("<html>Google Drive - Virus scan warning</html>")
    with pytest.raises(zoo.ZooError, match=r"page\.html.*not a weight file"):
        zoo.check_contents(semseg, semseg.files[0], tmp_path / "page.html")


# --- fetching into the cache -----------------------------------------------------------------------------

def served(server, e: zoo.ZooEntry, folder: Path, *, published: bool) -> zoo.ZooEntry:
    """The entry with its files on the local server (a tiny but real file per URL); with
    ``published`` the files' hash prefixes are published, else only what they must read as."""
    paths = write_in_source_layout(e, folder, k=16)
    files = []
    for f, p in zip(e.files, paths):
        data = p.read_bytes()
        url = server.add(f"/{e.name}/{f.file_name}", Route(data))
        digest = hashlib.sha256(data).hexdigest()
        files.append(dataclasses.replace(f, url=url, sha256_prefix=digest[:8] if published else None))
    return dataclasses.replace(e, files=tuple(files), download="direct")


def test_fetch_downloads_checks_and_caches(server, home, tmp_path):
    e = served(server, BY_NAME["mmseg-pspnet-r50-d8-ade20k"], tmp_path / "src", published=True)
    records = []
    paths = run_to_end(zoo.fetch(e, backoff=0), records.append)
    assert paths == [home / "models" / e.name / e.files[0].file_name]
    assert paths[0].read_bytes() == (tmp_path / "src" / e.files[0].file_name).read_bytes()
    assert sorted(p.name for p in paths[0].parent.iterdir()) == [e.files[0].file_name]
    assert records[-1].stage == "done" and all(r.name == e.name for r in records)
    assert zoo.cached_files(e) == paths
    core.load_model(paths[0])  # what was fetched loads
    # fetched again: checked, not downloaded
    n = len(server.log)
    assert run_to_end(zoo.fetch(e)) == paths and len(server.log) == n


def test_fetch_of_a_two_file_csail_entry_without_checksums(server, home, tmp_path):
    e = served(server, BY_NAME["csail-resnet18dilated-ppm-deepsup-ade20k"], tmp_path / "src", published=False)
    records = []
    paths = run_to_end(zoo.fetch(e, backoff=0), records.append)
    assert [p.name for p in paths] == ["encoder_epoch_20.pth", "decoder_epoch_20.pth"]
    assert {(r.index, r.count) for r in records} == {(0, 2), (1, 2)}
    assert core.load_model(paths).config.depth == 18


def test_fetch_refuses_a_file_that_is_not_the_entry(server, home, tmp_path):
    # the server has an R-50 where the R-101 entry expects its file: no checksum published, so the contents decide
    r101 = BY_NAME["csail-resnet101dilated-ppm-deepsup-ade20k"]
    wrong = served(server, BY_NAME["csail-resnet50dilated-ppm-deepsup-ade20k"], tmp_path / "src", published=False)
    e = dataclasses.replace(r101, files=tuple(dataclasses.replace(f, url=w.url) for f, w in zip(r101.files, wrong.files)))
    with pytest.raises(DownloadError, match=r"encoder_epoch_25\.pth.*ResNet-50, not the expected ResNet-101") as info:
        run_to_end(zoo.fetch(e, backoff=0))
    assert "\n" not in str(info.value)
    assert not (home / "models" / e.name).exists() or not any((home / "models" / e.name).iterdir())

    # a published prefix that does not match
    good = served(server, BY_NAME["mmseg-pspnet-r50-d8-ade20k"], tmp_path / "src2", published=True)
    bad = dataclasses.replace(good, files=(dataclasses.replace(good.files[0], sha256_prefix="00000000"),))
    with pytest.raises(DownloadError, match="not the published file"):
        run_to_end(zoo.fetch(bad, backoff=0))
    assert zoo.cached_files(bad) is None and not any((home / "models" / bad.name).iterdir())


def test_fetch_offline_names_the_url_and_where_to_put_the_file(home):
    e = BY_NAME["mmseg-pspnet-r50-d8-ade20k"]
    offline = dataclasses.replace(e, files=(dataclasses.replace(e.files[0], url=refused_url("/" + e.files[0].file_name)),))
    with pytest.raises(DownloadError) as info:
        run_to_end(zoo.fetch(offline))
    msg = str(info.value)
    target = home / "models" / e.name / e.files[0].file_name
    assert "\n" not in msg and offline.files[0].url in msg and "connection refused" in msg
    assert f"put it at {target}" in msg and f"models get {e.name} --file {e.files[0].file_name}" in msg
    assert not target.exists()


def test_a_manual_entry_says_where_to_get_it(home):
    with pytest.raises(zoo.ZooError, match=r"file-sharing page.*exp/ade20k/pspnet50/model/train_epoch_100\.pth"
                                           r".*--file train_epoch_100\.pth.*drive\.google\.com"):
        run_to_end(zoo.fetch("semseg-pspnet50-ade20k"))


def test_torchvision_files_in_torch_hubs_cache_count(home, tmp_path):
    e = BY_NAME["torchvision-resnet18"]
    hub = tmp_path / "torch-hub" / "checkpoints"
    hub.mkdir(parents=True)
    write_in_source_layout(e, hub, k=16)
    assert zoo.cached_files(e) == [hub / e.files[0].file_name]
    # a hash prefix is published for it: this fake file fails that check when fetched
    with pytest.raises(zoo.ZooError, match=r"not the published file.*delete it"):
        run_to_end(zoo.fetch(e))


# --- files given by hand -----------------------------------------------------------------------------------

def test_install_checks_and_copies_a_hand_downloaded_file(home, tmp_path):
    e = BY_NAME["semseg-pspnet50-voc2012"]
    src = write_in_source_layout(e, tmp_path / "downloads", k=16)[0]
    before = src.read_bytes()
    paths = run_to_end(zoo.install(e, [src]))
    assert paths == [home / "models" / e.name / "train_epoch_50.pth"] and paths[0].read_bytes() == before
    assert src.read_bytes() == before  # the given file is left as it was
    assert sorted(p.name for p in paths[0].parent.iterdir()) == ["train_epoch_50.pth"]  # no temp file


def test_install_refuses_a_wrong_file_and_changes_nothing(home, tmp_path):
    e = BY_NAME["semseg-pspnet101-voc2012"]
    src = write_in_source_layout(BY_NAME["semseg-pspnet50-voc2012"], tmp_path / "downloads", k=16)[0]
    with pytest.raises(zoo.ZooError, match=r"train_epoch_50\.pth.*ResNet-50, not the expected ResNet-101"):
        run_to_end(zoo.install(e, [src]))
    folder = home / "models" / e.name
    assert not folder.exists() or list(folder.iterdir()) == []


def test_install_a_csail_pair_under_other_names(home, tmp_path):
    e = BY_NAME["csail-resnet50dilated-ppm-deepsup-ade20k"]
    enc, dec = write_in_source_layout(e, tmp_path / "dl", k=16)
    a, b = enc.rename(tmp_path / "dl" / "a.pth"), dec.rename(tmp_path / "dl" / "b.pth")
    paths = run_to_end(zoo.install(e, [b, a]))  # matched by what they read as
    assert [p.name for p in paths] == ["encoder_epoch_20.pth", "decoder_epoch_20.pth"]
    assert paths[0].read_bytes() == a.read_bytes() and paths[1].read_bytes() == b.read_bytes()


# --- the command line ------------------------------------------------------------------------------------

def test_models_get_path_and_get_again(server, home, tmp_path, monkeypatch, capsys):
    e = served(server, BY_NAME["mmseg-pspnet-r50-d8-voc12aug"], tmp_path / "src", published=True)
    table = tmp_path / "zoo.json"
    raw = dict(e.raw)
    raw["files"] = [{**raw["files"][0], "url": e.files[0].url, "sha256_prefix": e.files[0].sha256_prefix}]
    table.write_text(json.dumps({"format": 1, "models": [raw]}))
    monkeypatch.setattr(zoo, "ZOO_FILE", table)

    assert main(["models", "path", e.name]) == 1
    assert f"{e.name} is not in the cache" in capsys.readouterr().err
    assert main(["models", "get", e.name, "-q"]) == 0
    target = home / "models" / e.name / e.files[0].file_name
    assert capsys.readouterr().out.strip() == str(target) and target.is_file()
    assert main(["models", "path", e.name]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    n = len(server.log)
    assert main(["models", "get", e.name, "-q"]) == 0 and len(server.log) == n


def test_models_get_offline_fails_in_one_line(home, tmp_path, monkeypatch, capsys):
    e = BY_NAME["csail-resnet18dilated-ppm-deepsup-ade20k"]
    raw = dict(e.raw)
    url = refused_url("/enc.pth")
    raw["files"] = [{**raw["files"][0], "url": url}, raw["files"][1]]
    table = tmp_path / "zoo.json"
    table.write_text(json.dumps({"format": 1, "models": [raw]}))
    monkeypatch.setattr(zoo, "ZOO_FILE", table)
    assert main(["models", "get", e.name]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: could not download " + url)
    assert str(home / "models" / e.name / "encoder_epoch_20.pth") in err
    assert "--file encoder_epoch_20.pth --file decoder_epoch_20.pth" in err


def test_models_get_file_good_and_wrong(home, tmp_path, capsys):
    e = BY_NAME["semseg-pspnet50-cityscapes"]
    good = write_in_source_layout(e, tmp_path / "good", k=16)[0]
    wrong = write_in_source_layout(BY_NAME["semseg-pspnet50-ade20k"], tmp_path / "wrong", k=16)[0]
    assert main(["models", "get", e.name, "--file", str(wrong), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "150 classes, not the expected 19" in err
    assert not (home / "models" / e.name).exists() or not any((home / "models" / e.name).iterdir())
    assert main(["models", "get", e.name, "--file", str(good), "-q"]) == 0
    target = home / "models" / e.name / "train_epoch_200.pth"
    assert capsys.readouterr().out.strip() == str(target) and target.read_bytes() == good.read_bytes()
    assert main(["models", "path", e.name]) == 0 and capsys.readouterr().out.strip() == str(target)
    assert main(["models", "get", e.name, "-q"]) == 0  # given by hand once, it is in the cache: checked, found
    assert capsys.readouterr().out.strip() == str(target)


def test_models_get_unknown_name(home, capsys):
    assert main(["models", "get", "pspnet-ade20k"]) == 1
    assert "no model 'pspnet-ade20k' in the zoo" in capsys.readouterr().err


# --- the app-data folder -----------------------------------------------------------------------------------

@pytest.mark.parametrize("platform, environ, expected", [
    ("linux", {}, "/home/ann/.local/share/PSPNet Studio/PSPNet Studio"),
    ("linux", {"XDG_DATA_HOME": "/data/ann"}, "/data/ann/PSPNet Studio/PSPNet Studio"),
    ("linux", {"XDG_DATA_HOME": "relative/dir"}, "/home/ann/.local/share/PSPNet Studio/PSPNet Studio"),
    ("darwin", {}, "/home/ann/Library/Application Support/PSPNet Studio/PSPNet Studio"),
    ("win32", {"APPDATA": "C:\\Users\\ann\\AppData\\Roaming"}, "C:\\Users\\ann\\AppData\\Roaming/PSPNet Studio/PSPNet Studio"),
    ("win32", {}, "/home/ann/AppData/Roaming/PSPNet Studio/PSPNet Studio"),
    ("linux", {"PSPNET_STUDIO_HOME": "/portable/studio"}, "/portable/studio"),
    ("win32", {"PSPNET_STUDIO_HOME": "/portable/studio", "APPDATA": "C:\\x"}, "/portable/studio"),
])
def test_app_data_dir_per_platform(platform, environ, expected):
    assert str(app_data_dir(environ=environ, platform=platform, home="/home/ann")) == expected


@pytest.mark.parametrize("xdg", [None, "/tmp/xdg-data", "relative"])
def test_app_data_dir_is_the_folder_qt_gives(xdg, tmp_path):
    """The app asks Qt (QStandardPaths.AppDataLocation, org and app "PSPNet Studio"); core must agree."""
    pytest.importorskip("PySide6")
    env = {k: v for k, v in os.environ.items() if k not in ("PSPNET_STUDIO_HOME", "XDG_DATA_HOME")}
    env["HOME"] = str(tmp_path)
    if xdg is not None:
        env["XDG_DATA_HOME"] = xdg
    script = ("from PySide6.QtCore import QCoreApplication, QStandardPaths\n"
              "app = QCoreApplication([])\n"
              "app.setApplicationName('PSPNet Studio'); app.setOrganizationName('PSPNet Studio')\n"
              "print(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))\n")
    qt = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert qt.returncode == 0, qt.stderr
    assert qt.stdout.strip() == str(app_data_dir(environ=env, home=tmp_path))


def test_the_zoo_cache_follows_pspnet_studio_home(home):
    assert zoo.cache_dir() == home / "models"
    assert zoo.target_paths("torchvision-resnet50") == [home / "models" / "torchvision-resnet50" /
                                                        "resnet50-0676ba61.pth"]
