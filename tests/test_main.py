"""main.py before Qt: a missing system library or no display gives a message, not Qt's abort;
README's test command is the one CI runs."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import app.platform_check as pc
from app.platform_check import Library, chosen_platform, gui_problem, install_command, missing_libraries

ROOT = Path(__file__).resolve().parents[1]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check runs on Linux only")
FAKE = Library("libpspnet-not-installed.so.7", "libpspnet-fake7", "pspnet-fake-fedora", "pspnet-fake-arch")
PRESENT = Library("libc.so.6", "libc6", "glibc", "glibc")
RUNTIME = {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2", "librt.so.1",
           "libz.so.1", "libzstd.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}  # every system has these


# ---------------------------------------------------------------------------------------- README and CI


def test_ci_runs_the_readme_test_command_exactly():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick.split("```bash\n", 1)[1].split("```", 1)[0]
    command = next(line.split("#", 1)[0].strip() for line in block.splitlines() if "pytest" in line)
    assert command == 'pip install torch==2.13.0 -e ".[test]" && python -m pytest -q'
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert command in ci
    assert [line for line in ci if "pip install" in line and not line.startswith("#")] == [command]  # no other extras


# ---------------------------------------------------------------------------------------- the platform


@pytest.mark.parametrize("environ,screenshot,expected", [
    ({}, False, None),
    ({"DISPLAY": ":0"}, False, "xcb"),
    ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, False, "wayland"),
    ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}, False, "wayland"),
    ({}, True, "offscreen"),  # app.launch renders a screenshot offscreen
    ({"QT_QPA_PLATFORM": "xcb:nograb", "WAYLAND_DISPLAY": "w"}, True, "xcb"),  # the user's choice wins
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, False, "wayland"),
    ({"QT_QPA_PLATFORM": "offscreen"}, False, "offscreen"),
])
def test_chosen_platform_follows_qt(environ, screenshot, expected):
    assert chosen_platform(environ, screenshot) == expected


def test_missing_libraries_are_the_ones_the_loader_cannot_load():
    assert missing_libraries([PRESENT, FAKE]) == [FAKE]
    assert missing_libraries([FAKE], load=lambda name: None) == []


def test_install_command_per_distribution():
    xcb = [lib for lib in pc.XCB_LIBRARIES if lib.soname in ("libxcb-randr.so.0", "libxcb-shape.so.0",
                                                             "libxcb-icccm.so.4")]
    assert install_command(xcb, "debian", root=False) == ("install them (Debian/Ubuntu): sudo apt-get install "
                                                          "libxcb-icccm4 libxcb-randr0 libxcb-shape0")
    assert install_command(xcb, "fedora", root=True) == "install them (Fedora): dnf install xcb-util-wm libxcb"
    assert install_command(xcb, "arch", root=True) == "install them (Arch): pacman -S xcb-util-wm libxcb"
    assert install_command(xcb, None, root=True).startswith("install them (Debian/Ubuntu): apt-get install")
    assert pc.distribution_family({"ID": "ubuntu", "ID_LIKE": "debian"}) == "debian"
    assert pc.distribution_family({"ID": "rocky", "ID_LIKE": "rhel centos fedora"}) == "fedora"
    assert pc.distribution_family({"ID": "endeavouros", "ID_LIKE": "arch"}) == "arch"
    assert pc.distribution_family({"ID": "nixos"}) is None


def test_gui_problem_names_the_missing_library_for_the_chosen_platform():
    x11 = {"DISPLAY": ":0"}
    message = gui_problem(x11, gui_libraries=[PRESENT], xcb_libraries=[PRESENT, FAKE], family="fedora", system="linux")
    assert message.splitlines() == [
        "Qt's X11 platform plugin (xcb) needs libraries that are not installed: libpspnet-not-installed.so.7",
        install_command([FAKE], "fedora")]
    # Qt's own libraries are needed by every platform; the X11 ones only by X11
    message = gui_problem({"QT_QPA_PLATFORM": "offscreen"}, gui_libraries=[FAKE], xcb_libraries=[FAKE],
                          family="arch", system="linux")
    assert message.splitlines() == ["Qt (PySide6) cannot start: it needs libraries that are not installed: "
                                    "libpspnet-not-installed.so.7", install_command([FAKE], "arch")]
    assert gui_problem({"QT_QPA_PLATFORM": "offscreen"}, gui_libraries=[PRESENT], xcb_libraries=[FAKE],
                       system="linux") is None
    assert gui_problem({"WAYLAND_DISPLAY": "wayland-0"}, gui_libraries=[PRESENT], xcb_libraries=[FAKE],
                       system="linux") is None
    assert gui_problem({}, screenshot=True, gui_libraries=[PRESENT], xcb_libraries=[FAKE], system="linux") is None
    # other systems are not checked, and the check can be switched off
    assert gui_problem({}, gui_libraries=[FAKE], xcb_libraries=[FAKE], system="darwin") is None
    assert gui_problem({"PSPNET_STUDIO_NO_PLATFORM_CHECK": "1"}, gui_libraries=[FAKE], system="linux") is None


def test_a_plugin_that_still_cannot_load_is_reported_with_the_loaders_words(monkeypatch, tmp_path):
    broken = tmp_path / "libqxcb.so"
    broken.write_bytes(b"not a shared library")
    monkeypatch.setattr(pc, "XCB_LIBRARIES", (PRESENT,))  # every library of the table is there ...
    monkeypatch.setattr(pc, "_xcb_plugin", lambda: broken)  # ... and yet the plugin does not load
    lines = gui_problem({"DISPLAY": ":0"}, gui_libraries=[PRESENT], system="linux").splitlines()
    assert lines[0].startswith(f"Qt's X11 platform plugin (xcb) cannot be loaded: {broken}") and len(lines) == 2


def test_no_display_says_so_and_what_to_do():
    message = gui_problem({}, gui_libraries=[PRESENT], xcb_libraries=[PRESENT], system="linux")
    lines = message.splitlines()
    assert lines[0] == "no display to open the window on (DISPLAY and WAYLAND_DISPLAY are not set)"
    assert "python main.py gui --screenshot OUT.png" in lines[1] and pc.VIRTUAL_DISPLAY in lines[1]
    # what a virtual display would need too
    lines = gui_problem({}, gui_libraries=[PRESENT], xcb_libraries=[FAKE], family="debian",
                        system="linux").splitlines()
    assert len(lines) == 4 and "(xcb), which a virtual display uses," in lines[2] and "libpspnet-fake7" in lines[3]


# ---------------------------------------------------------------------------------------- main.py for real


def _bare_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XDG_SESSION_TYPE",
                        "PSPNET_STUDIO_NO_PLATFORM_CHECK")}
    home = tmp_path / "home"
    home.mkdir()
    env.update(HOME=str(home), PSPNET_STUDIO_HOME=str(home / "studio"), **extra)
    return env


@linux_only
def test_main_without_a_display_exits_with_the_message_not_signal_6(tmp_path):
    env = _bare_env(tmp_path)
    run = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    lines = run.stderr.splitlines()
    assert lines[0] == "error: no display to open the window on (DISPLAY and WAYLAND_DISPLAY are not set)"
    assert "--screenshot OUT.png" in lines[1] and "xvfb-run" in lines[1]
    assert not (tmp_path / "home" / "studio").exists()  # stopped before the demo project was written


@linux_only
def test_main_names_a_missing_library_and_its_package_before_importing_qt(tmp_path):
    script = (
        "import sys\n"
        "import app.platform_check as pc\n"
        f"pc.XCB_LIBRARIES = pc.XCB_LIBRARIES + (pc.{FAKE!r},)\n"
        "import main\n"
        "code = main.main(['gui'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('PySide6')))\n"
        "sys.exit(code)\n"
    )
    env = _bare_env(tmp_path, DISPLAY=":97")  # no X server needed: the check fails before Qt connects
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1, run.stderr
    assert run.stdout.strip() == "[]"  # Qt was never imported
    lines = run.stderr.splitlines()
    assert lines[0].startswith("error: Qt's X11 platform plugin (xcb) needs libraries that are not installed: ")
    assert FAKE.soname in lines[0].split(": ", 2)[2].split(", ")
    family = pc.distribution_family() or "debian"
    assert re.match(r"install them \(.+\): (sudo )?(apt-get|dnf|pacman) ", lines[1]) and getattr(FAKE, family) in lines[1]


# ---------------------------------------------------------------------------------------- the tables


def _needed(path: Path) -> list[str]:
    """DT_NEEDED of a 64-bit little-endian ELF file (what `readelf -d` lists as NEEDED)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        pytest.skip(f"{path.name}: not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQII", data, shoff + i * shentsize) for i in range(shnum)]
    names = []
    for _, kind, _, _, offset, size, link, _ in sections:
        if kind != 6:  # SHT_DYNAMIC
            continue
        strtab = sections[link][4]
        for pos in range(offset, offset + size, 16):
            tag, value = struct.unpack_from("<qQ", data, pos)
            if tag == 1:  # DT_NEEDED
                names.append(data[strtab + value:data.index(b"\0", strtab + value)].decode())
    return names


@linux_only
def test_the_tables_hold_every_system_library_pysides_qt_links():
    qt = Path(pytest.importorskip("PySide6").__file__).parent / "Qt"
    plugin = qt / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.is_file():
        pytest.skip("PySide6 without its bundled Qt (a distribution's build)")
    bundled = {p.name for p in (qt / "lib").iterdir()}
    gui = {lib.soname for lib in pc.QT_GUI_LIBRARIES}
    xcb = {lib.soname for lib in pc.XCB_LIBRARIES}
    for name in ("libQt6Core.so.6", "libQt6Gui.so.6", "libQt6DBus.so.6"):
        assert set(_needed(qt / "lib" / name)) - bundled - RUNTIME <= gui, name
    for path in (plugin, qt / "lib" / "libQt6XcbQpa.so.6"):
        assert set(_needed(path)) - bundled - RUNTIME <= gui | xcb, path.name
    assert "libxcb-icccm.so.4" in _needed(plugin)  # the parser reads the real thing


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="not a Debian system")
def test_the_debian_package_names_own_the_libraries():
    libraries = pc.QT_GUI_LIBRARIES + pc.XCB_LIBRARIES
    run = subprocess.run(["dpkg", "-S", *(f"*/{lib.soname}" for lib in libraries)], capture_output=True, text=True)
    owners: dict[str, set[str]] = {}
    for line in run.stdout.splitlines():  # "libxcb1:amd64: /usr/lib/x86_64-linux-gnu/libxcb.so.1"
        package, path = line.split(": ", 1)
        owners.setdefault(Path(path).name, set()).add(package.split(":")[0])
    checked = 0
    for lib in libraries:
        if lib.soname in owners:  # installed here
            # Ubuntu 24.04 renamed some (libglib2.0-0t64); apt installs them under the old name
            assert owners[lib.soname] & {lib.debian, lib.debian + "t64"}, (lib, owners[lib.soname])
            checked += 1
    assert checked > 0
