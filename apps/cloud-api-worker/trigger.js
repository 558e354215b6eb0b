// A second Worker, for local runs in workerd only (workerd.capnp): fires
// the main Worker's events the way the Cloudflare runtime does, through a
// service binding, since workerd has no cron scheduler of its own.
//
//   curl '127.0.0.1:8788/scheduled?cron=0+3+*+*+*'
//       runs the main Worker's `scheduled` handler once, and answers its
//       outcome as JSON ({"outcome":"ok","noRetry":false}).
//   curl -d '[{"id":"m1","body":{"delete_tokens_older_than_days":90}}]' \
//       '127.0.0.1:8788/queue?name=cloud-api-jobs'
//       delivers one batch of those messages to the main Worker's `queue`
//       handler, and answers what it acknowledged and retried
//       ({"outcome":"ok","ackAll":false,"retryAll":false,"explicitAcks":["m1"],
//       "explicitRetries":[]}).
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/scheduled") {
      const cron = url.searchParams.get("cron") ?? "* * * * *";
      const result = await env.MAIN.scheduled({ cron, scheduledTime: new Date() });
      return Response.json(result);
    }
    if (url.pathname === "/queue" && request.method === "POST") {
      const name = url.searchParams.get("name") ?? "cloud-api-jobs";
      const messages = (await request.json()).map((m) => ({
        id: m.id,
        timestamp: new Date(),
        body: m.body,
        attempts: m.attempts ?? 1,
      }));
      const result = await env.MAIN.queue(name, messages);
      // What the handler decided: the ids it acked and retried.
      return Response.json({
        outcome: result.outcome,
        ackAll: result.ackAll,
        retryAll: result.retryBatch?.retry ?? false,
        explicitAcks: result.explicitAcks,
        explicitRetries: (result.retryMessages ?? []).map((m) => m.msgId),
      });
    }
    return Response.json(
      { error: "not found: try /scheduled?cron=... or POST /queue?name=..." },
      { status: 404 },
    );
  },
};
