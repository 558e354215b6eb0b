// What the attribute writes itself (`type Lifetime`, `type Deps`), and
// anything that is not a step, is refused, each where it is written.
use provision::{Dep, Error, provide};

struct Db;
provision::supplied!(Db);

struct Conn;

#[provide(Request)]
impl Conn {
    type Deps = (Db,);

    const LIMIT: u32 = 5;

    async fn build(db: Dep<Db>) -> Result<Self, Error> {
        let _ = db;
        Ok(Conn)
    }
}

fn main() {}
