"""The small app the API tests drive: a run that succeeds, one that dead-letters, one
that waits for a person, one that waits for an event."""

from __future__ import annotations

import surefoot as sf


def declare(app: sf.App) -> sf.App:
    @app.step(name="shout")
    def shout(text: str) -> str:
        return text.upper()

    @app.step(name="charge")
    def charge(order_id: str) -> str:
        raise sf.PermanentError(f"card declined for {order_id}")

    @app.workflow(name="greet", queue="greetings")
    def greet(ctx: sf.WorkflowContext, name: str) -> str:
        return shout(f"hello {name}")

    @app.workflow(name="doomed")
    def doomed(ctx: sf.WorkflowContext, order_id: str) -> str:
        return charge(order_id)

    @app.workflow(name="approve")
    def approve(ctx: sf.WorkflowContext, amount: int) -> str:
        decision = ctx.review("approval", payload={"amount": amount})
        return f"{decision.action} by {decision.decided_by}"

    @app.workflow(name="waiter")
    def waiter(ctx: sf.WorkflowContext) -> object:
        return ctx.wait_for("go")

    app.queue("greetings", concurrency=2)
    app.queue("tight", max_depth=1, retry_after_s=7)
    return app
