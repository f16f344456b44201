#!/bin/sh
# Install Photoseek for the current user (no root): the application folder goes to
# ~/.local/lib/photoseek, commands to ~/.local/bin, the menu entry and icons to the XDG data
# folders. Your library and settings stay in ~/.local/share/photoseek and are never touched,
# so installing a newer version keeps them.
set -eu

SRC=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-$HOME/.local}
DATA_HOME=${XDG_DATA_HOME:-$HOME/.local/share}
APP_DIR=$PREFIX/lib/photoseek
BIN_DIR=$PREFIX/bin

if [ ! -x "$SRC/photoseek-desktop" ] || [ ! -d "$SRC/_internal" ]; then
    echo "install.sh: run me from the unpacked Photoseek folder" >&2
    exit 1
fi

mkdir -p "$PREFIX/lib" "$BIN_DIR" "$DATA_HOME/applications"
if [ "$SRC" != "$APP_DIR" ]; then
    # Copy beside the old version first, then swap, so a failed copy leaves the old one working.
    rm -rf "$APP_DIR.new"
    cp -a "$SRC" "$APP_DIR.new"
    rm -rf "$APP_DIR.old"
    if [ -e "$APP_DIR" ]; then mv "$APP_DIR" "$APP_DIR.old"; fi
    mv "$APP_DIR.new" "$APP_DIR"
    rm -rf "$APP_DIR.old"
fi

for cmd in photoseek photoseek-desktop; do
    ln -sfn "$APP_DIR/$cmd" "$BIN_DIR/$cmd"
done

sed "s|@APP_DIR@|$APP_DIR|g" "$APP_DIR/share/applications/photoseek.desktop.in" \
    > "$DATA_HOME/applications/photoseek.desktop"
(cd "$APP_DIR/share/icons/hicolor" && find . -name 'photoseek.*' -type f) | while read -r icon; do
    mkdir -p "$DATA_HOME/icons/hicolor/$(dirname "$icon")"
    cp "$APP_DIR/share/icons/hicolor/$icon" "$DATA_HOME/icons/hicolor/$icon"
done

command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$DATA_HOME/applications" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$DATA_HOME/icons/hicolor" || true

echo "Photoseek $(cat "$APP_DIR/VERSION") installed in $APP_DIR"
echo "Start it from the application menu, or run: photoseek-desktop"
case ":$PATH:" in *":$BIN_DIR:"*) ;; *) echo "(add $BIN_DIR to your PATH to run the commands by name)";; esac
