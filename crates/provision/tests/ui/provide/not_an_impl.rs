// The attribute goes on the service's `impl` block, not on its struct.
use provision::provide;

#[provide(Request)]
struct Conn;

fn main() {}
