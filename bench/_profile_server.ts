// Wrapper used by bench/profile.ts: runs the benchmark server script given as
// the first argument and exits cleanly on SIGTERM, so that `deno run
// --cpu-prof` writes its profile (it does so only on a normal exit).
//
//   deno run -A --cpu-prof bench/_profile_server.ts ./servers/connctx.ts --port=0

const script = Deno.args[0];
if (script === undefined) throw new Error("usage: _profile_server.ts SCRIPT [flags]");
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
await import(new URL(script, import.meta.url).href);
