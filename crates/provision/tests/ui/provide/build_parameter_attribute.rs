// `build`'s parameters become one tuple pattern, where attributes cannot go.
use provision::{Dep, Error, provide};

struct Db;
provision::supplied!(Db);

struct Conn;

#[provide(Request)]
impl Conn {
    async fn build(#[allow(unused_variables)] db: Dep<Db>) -> Result<Self, Error> {
        Ok(Conn)
    }
}

fn main() {}
