"""The web dashboard behind `pipelinectl ui`: a client of the same Session and drivers as the CLI.

    planes.py   the contexts shown: one Session each, status reads shared between pages, metric history
    graph.py    the pipeline graph (SVG layout) and sparklines, from the models alone
    actions.py  page actions, each through the CLI verb's own flow (plan, confirm in the page, apply)
    cursors.py  cursor pages (DLQ browser, audit view) over a driver's dlq_list / audit_list iterator
    app.py      the Starlette app: routes, templates, the access-token and CSRF guard
    serve.py    binds 127.0.0.1, prints the URL with its access token, runs uvicorn

Never imported on the CLI's fast path: only `pipelinectl ui` imports it, and its
dependencies come with the `ui` extra (pip install 'pipelinectl[ui]').
"""
