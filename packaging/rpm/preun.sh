# renewd %preun (as %systemd_preun): on removal, not upgrade, disable and stop.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload disable --now renewd.service >/dev/null 2>&1 || :
fi
