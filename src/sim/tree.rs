//! The shape of the overlay among running nodes: eager links, the tree they form, the
//! components of the whole overlay, and a Graphviz drawing of the tree.

use super::{NodeIndex, Sim};

/// The shape of the eager links among running nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeShape {
    /// Links eager at both ends.
    pub eager_links: usize,
    /// Links eager at one end only (the other end has the peer lazy or not at all).
    pub one_sided: usize,
    /// Connected components of the graph of links eager at both ends (1 for a connected tree).
    pub components: usize,
    /// Running nodes in the largest of those components (islands hold the rest).
    pub largest_component: usize,
}

impl Sim {
    /// Every eager link among running nodes: `(a, b, mutual)`, with `a < b` for mutual links and
    /// `a -> b` (a pushes to b, b does not push back) for one-sided ones.
    pub fn eager_links(&self) -> Vec<(NodeIndex, NodeIndex, bool)> {
        let mut links = Vec::new();
        for a in self.live_nodes() {
            for &b in self.node(a).expect("live").eager_peers() {
                let mutual = self
                    .node(b)
                    .is_some_and(|other| other.peer_role(&a) == Some(crate::PeerRole::Eager));
                if !mutual {
                    links.push((a, b, false));
                } else if a < b {
                    links.push((a, b, true));
                }
            }
        }
        links
    }

    /// Connected components of the overlay among running nodes: every neighbour link, eager or
    /// lazy, counted as undirected; links to stopped nodes do not count. 1 means every running
    /// node can still reach every other through announcements and grafts.
    pub fn overlay_components(&self) -> usize {
        let links = self.live_nodes().flat_map(|a| {
            let core = self.node(a).expect("live");
            core.eager_peers()
                .chain(core.lazy_peers())
                .filter(|&&b| self.is_live(b))
                .map(move |&b| (a, b))
        });
        self.component_sizes(links).len()
    }

    /// The sizes of the connected components among running nodes of the graph with `links`
    /// (undirected).
    fn component_sizes(&self, links: impl Iterator<Item = (NodeIndex, NodeIndex)>) -> Vec<usize> {
        let mut parent: Vec<usize> = (0..self.nodes.len()).collect();
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        for (a, b) in links {
            let (ra, rb) = (root(&mut parent, a as usize), root(&mut parent, b as usize));
            parent[ra] = rb;
        }
        let mut sizes = vec![0; self.nodes.len()];
        for i in self.live_nodes() {
            sizes[root(&mut parent, i as usize)] += 1;
        }
        sizes.retain(|&n| n > 0);
        sizes
    }

    /// Measures the eager graph now: symmetric links, one-sided links, components.
    pub fn tree_shape(&self) -> TreeShape {
        let links = self.eager_links();
        let mutual = links.iter().filter(|(_, _, m)| *m).count();
        let sizes =
            self.component_sizes(links.iter().filter(|(_, _, m)| *m).map(|&(a, b, _)| (a, b)));
        TreeShape {
            eager_links: mutual,
            one_sided: links.len() - mutual,
            components: sizes.len(),
            largest_component: sizes.iter().copied().max().unwrap_or(0),
        }
    }

    /// The eager links as a Graphviz graph: solid edges are tree links, dashed arrows one-sided
    /// links. Render with `sfdp -Tsvg tree.dot > tree.svg` (or `neato` for small clusters).
    pub fn eager_tree_dot(&self) -> String {
        use std::fmt::Write;
        let mut dot = String::from(
            "digraph eager_tree {\n  graph [overlap=false, outputorder=edgesfirst];\n",
        );
        dot.push_str(
            "  node [shape=point, width=0.06];\n  edge [arrowhead=none, color=\"#4060a0\"];\n",
        );
        for (a, b, mutual) in self.eager_links() {
            let style = if mutual {
                ""
            } else {
                " [style=dashed, arrowhead=normal, color=\"#c04040\"]"
            };
            let _ = writeln!(dot, "  {a} -> {b}{style};");
        }
        dot.push_str("}\n");
        dot
    }
}
