#!/bin/sh
# Remove the per-user Photoseek install made by install.sh. Your library, settings and models
# in ~/.local/share/photoseek (and thumbnails in ~/.cache/photoseek) are kept; delete those
# folders yourself if you want them gone.
set -eu

PREFIX=${PREFIX:-$HOME/.local}
DATA_HOME=${XDG_DATA_HOME:-$HOME/.local/share}
APP_DIR=$PREFIX/lib/photoseek
BIN_DIR=$PREFIX/bin

for cmd in photoseek photoseek-desktop; do
    # Only our own links: a photoseek installed some other way (pip) is left alone.
    if [ -L "$BIN_DIR/$cmd" ] && [ "$(readlink "$BIN_DIR/$cmd")" = "$APP_DIR/$cmd" ]; then
        rm -f "$BIN_DIR/$cmd"
    fi
done
rm -f "$DATA_HOME/applications/photoseek.desktop"
find "$DATA_HOME/icons/hicolor" -path '*/apps/photoseek.*' -type f -exec rm -f {} + 2>/dev/null || true
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$DATA_HOME/applications" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$DATA_HOME/icons/hicolor" || true
rm -rf "$APP_DIR" "$APP_DIR.new" "$APP_DIR.old"

echo "Photoseek removed. Your library and settings are still in $DATA_HOME/photoseek."
