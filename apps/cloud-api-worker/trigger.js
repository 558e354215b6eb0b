// A second Worker, for local runs in workerd only (workerd.capnp): fires
// the main Worker's events the way the Cloudflare runtime does, through a
// service binding, since workerd has no cron scheduler of its own.
//
//   curl '127.0.0.1:8788/scheduled?cron=0+3+*+*+*'
//       runs the main Worker's `scheduled` handler once, and answers its
//       outcome as JSON ({"outcome":"ok","noRetry":false}).
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/scheduled") {
      const cron = url.searchParams.get("cron") ?? "* * * * *";
      const result = await env.MAIN.scheduled({ cron, scheduledTime: new Date() });
      return Response.json(result);
    }
    return Response.json({ error: "not found: try /scheduled?cron=..." }, { status: 404 });
  },
};
