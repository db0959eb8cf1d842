# renewd %post (as %systemd_post): on a first install apply the distribution's
# preset policy for the unit (Fedora: disabled unless a preset enables it).
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload preset renewd.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
