"""pytest plugin for running certbot-ci offline (loaded with `-p certbot_ci_offline`).

certbot-ci normally downloads pinned pebble release zips from GitHub. This
plugin makes it use whichever `pebble` / `pebble-challtestsrv` come first on
PATH instead, so the same suite can be pointed at Debian's Pebble or at
acme-ca's wrappers just by changing PATH. It changes no test assertion.

If CERTBOT_CI_LOG_DIR is set, the output of every helper process the suite
starts (challtestsrv, pebble, OCSP mock, HTTP proxy) is appended to a
per-program log file there, instead of being thrown away, for diagnosis.
"""
import os
import shutil

from certbot_integration_tests.utils import acme_server, pebble_artifacts


def _asset_from_path(asset, assets_path):
    found = shutil.which(asset)
    if not found:
        raise RuntimeError(f'{asset} not found on PATH (certbot-ci offline adapter)')
    return found


pebble_artifacts._fetch_asset = _asset_from_path  # pylint: disable=protected-access

_log_dir = os.environ.get('CERTBOT_CI_LOG_DIR')
if _log_dir:
    _orig_launch = acme_server.ACMEServer._launch_process  # pylint: disable=protected-access

    def _launch_logged(self, command, *args, **kwargs):
        os.makedirs(_log_dir, exist_ok=True)
        name = os.path.basename(command[1] if command[0].endswith(('python', 'python3'))
                                or 'python' in os.path.basename(command[0]) else command[0])
        log = open(os.path.join(_log_dir, name + '.log'), 'ab')  # pylint: disable=consider-using-with
        log.write(('# ' + ' '.join(command) + '\n').encode())
        log.flush()
        saved, self._stdout = self._stdout, log
        try:
            return _orig_launch(self, command, *args, **kwargs)
        finally:
            self._stdout = saved
            log.close()  # the child holds its own copy of the descriptor

    acme_server.ACMEServer._launch_process = _launch_logged  # pylint: disable=protected-access
