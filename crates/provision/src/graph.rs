//! The dependency graph: validated when a registry is built (a cycle is an
//! error that names it), and printable as text, Mermaid or DOT.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt::{self, Write};

use crate::{Error, ServiceInfo};

/// Every service reachable from `roots`, dependencies before dependents, or
/// an error naming the first cycle found.
pub(crate) fn in_build_order(
    roots: &[&'static ServiceInfo],
) -> Result<Vec<&'static ServiceInfo>, Error> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        info: &'static ServiceInfo,
        marks: &mut HashMap<TypeId, Mark>,
        path: &mut Vec<&'static ServiceInfo>,
        order: &mut Vec<&'static ServiceInfo>,
    ) -> Result<(), Error> {
        match marks.get(&info.type_id()) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = path.iter().position(|p| *p == info).unwrap_or(0);
                let mut names: Vec<&str> = path[start..].iter().map(|p| p.name()).collect();
                names.push(info.name());
                return Err(Error::new(format!(
                    "dependency cycle: {}; a service cannot depend on itself, directly or through others",
                    names.join(" -> ")
                )));
            }
            None => {}
        }
        marks.insert(info.type_id(), Mark::Visiting);
        path.push(info);
        for dep in info.dependencies() {
            visit(dep, marks, path, order)?;
        }
        path.pop();
        marks.insert(info.type_id(), Mark::Done);
        order.push(info);
        Ok(())
    }

    let mut marks = HashMap::new();
    let mut order = Vec::new();
    for root in roots {
        visit(root, &mut marks, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// The services a registry knows and what each depends on.
///
/// ```
/// # use provision::{Dep, Error, Provide, Request};
/// struct Settings;
/// provision::supplied!(Settings);
/// struct Greeter;
/// impl Provide for Greeter {
///     type Lifetime = Request;
///     type Deps = (Settings,);
///     async fn build(_: (Dep<Settings>,)) -> Result<Self, Error> { Ok(Greeter) }
/// }
///
/// let graph = provision::Graph::of(&[provision::ServiceInfo::of::<Greeter>()]).unwrap();
/// assert_eq!(graph.to_string(), "Settings (app)\nGreeter (request) <- Settings\n");
/// assert!(graph.to_mermaid().contains("Greeter --> Settings"));
/// ```
#[derive(Debug, Clone)]
pub struct Graph {
    services: Vec<&'static ServiceInfo>,
}

impl Graph {
    /// The graph of everything reachable from `roots`, or the cycle error.
    pub fn of(roots: &[&'static ServiceInfo]) -> Result<Graph, Error> {
        Ok(Graph {
            services: in_build_order(roots)?,
        })
    }

    /// The services, dependencies before dependents.
    pub fn services(&self) -> &[&'static ServiceInfo] {
        &self.services
    }

    /// A Mermaid flowchart: an edge from each service to what it depends on.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        for s in &self.services {
            let _ = writeln!(
                out,
                "    {}[\"{} ({})\"]",
                node_id(s),
                s.name(),
                s.lifetime()
            );
        }
        for s in &self.services {
            for d in s.dependencies() {
                let _ = writeln!(out, "    {} --> {}", node_id(s), node_id(d));
            }
        }
        out
    }

    /// A Graphviz DOT digraph.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph services {\n");
        for s in &self.services {
            let _ = writeln!(
                out,
                "    \"{}\" [label=\"{}\\n{}\"];",
                s.name(),
                s.name(),
                s.lifetime()
            );
        }
        for s in &self.services {
            for d in s.dependencies() {
                let _ = writeln!(out, "    \"{}\" -> \"{}\";", s.name(), d.name());
            }
        }
        out.push_str("}\n");
        out
    }
}

/// One line a service: `Name (lifetime) <- Dep, Dep`.
impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.services {
            write!(f, "{} ({})", s.name(), s.lifetime())?;
            let deps = s.dependencies();
            if !deps.is_empty() {
                let names: Vec<&str> = deps.iter().map(|d| d.name()).collect();
                write!(f, " <- {}", names.join(", "))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

fn node_id(info: &ServiceInfo) -> String {
    info.name()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
