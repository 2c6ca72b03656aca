"""A tiny Flask app, packaged by upaas."""
import os

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/")
def index():
    return jsonify(app="python-flask", commit=os.environ.get("UPAAS_COMMIT", "unknown"))


@app.route("/health")
def health():
    return "ok\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8000")))
