"""Makes a fresh Gajim profile with one account, the way Gajim's account wizard does
(gajim.common.application.create_account), without its window: run with Gajim's own Python
modules, as the user Gajim will run as.

    python3 make_profile.py CONFIG_ROOT JID PASSWORD HOST PORT

(Not `profile.py`: Python puts this folder first on drive.py's path, and a module of that name
shadows the standard library's `profile`, which Gajim imports.)
"""

import sys

from gajim.common import configpaths

root, jid, password, host, port = sys.argv[1:6]
configpaths.set_config_root(root)
configpaths.init()
configpaths.create_paths()

from gajim.common.settings import Settings  # noqa: E402 (after the paths are set)

settings = Settings()
settings.init()
# No desktop keyring here: the password is kept in the profile's settings.
settings.set_app_setting("use_keyring", False)
user, domain = jid.split("@")
settings.add_account("xmppd")
for key, value in {
    "name": user,
    "resource": "gajim",
    "account_label": jid,
    "hostname": domain,
    "use_custom_host": True,
    "custom_host": host,
    "custom_port": int(port),
    "custom_type": "START TLS",
    "savepass": True,
    "password": password,
    "active": True,
}.items():
    settings.set_account_setting("xmppd", key, value)
settings.save()
print("profile ready")
