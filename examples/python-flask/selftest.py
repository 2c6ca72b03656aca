"""The app's own test: runs in the build (main action) and after deploy."""
from app import app

client = app.test_client()
r = client.get("/")
assert r.status_code == 200, r.status_code
assert r.get_json()["app"] == "python-flask"
assert client.get("/health").data == b"ok\n"
print("selftest ok")
