//! Strongly connected components (Tarjan) and a shortest cycle through a
//! node: the cycles of the module graph and an example of each.

use std::collections::VecDeque;

/// The strongly connected components of the graph with nodes `0..adj.len()`
/// and edges `n -> adj[n]`, each sorted, listed by their smallest node.
pub fn components(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct Tarjan<'a> {
        adj: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        // Recursive: module graphs are a few hundred nodes deep at most.
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for &w in &self.adj[v] {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(i) if self.on_stack[w] => self.low[v] = self.low[v].min(i),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut c = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    c.push(w);
                    if w == v {
                        break;
                    }
                }
                c.sort_unstable();
                self.out.push(c);
            }
        }
    }
    let n = adj.len();
    let mut t = Tarjan {
        adj,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    t.out.sort();
    t.out
}

/// A shortest cycle through `start` that stays inside `within` (a strongly
/// connected component holding it): `[start, ..., start]`.
pub fn shortest_cycle(adj: &[Vec<usize>], start: usize, within: &[usize]) -> Option<Vec<usize>> {
    // Breadth first, so the first way back to `start` is a shortest one.
    let mut before = vec![None; adj.len()];
    before[start] = Some(start);
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in &adj[v] {
            if w == start {
                let mut cycle = vec![v];
                let mut at = v;
                while at != start {
                    at = before[at]?;
                    cycle.push(at);
                }
                cycle.reverse();
                cycle.push(start);
                return Some(cycle);
            }
            if before[w].is_none() && within.binary_search(&w).is_ok() {
                before[w] = Some(v);
                queue.push_back(w);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in edges {
            adj[a].push(b);
        }
        adj
    }

    fn cycles(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
        components(&graph(n, edges))
            .into_iter()
            .filter(|c| c.len() > 1)
            .collect()
    }

    #[test]
    fn a_chain_or_a_tree_has_no_cycle() {
        assert!(cycles(4, &[(0, 1), (1, 2), (2, 3)]).is_empty());
        assert!(cycles(5, &[(0, 1), (0, 2), (1, 3), (2, 3), (3, 4)]).is_empty());
        assert_eq!(components(&graph(3, &[])), [[0], [1], [2]]);
    }

    #[test]
    fn cycles_are_found_whole_and_apart() {
        // 0 <-> 1, and 2 -> 3 -> 4 -> 2 reached from 1; 5 hangs off 4.
        let e = [(0, 1), (1, 0), (1, 2), (2, 3), (3, 4), (4, 2), (4, 5)];
        assert_eq!(cycles(6, &e), [vec![0, 1], vec![2, 3, 4]]);
        // Closing 5 -> 0 makes one component of all six.
        let mut all = e.to_vec();
        all.push((5, 0));
        assert_eq!(cycles(6, &all), [vec![0, 1, 2, 3, 4, 5]]);
    }

    #[test]
    fn a_self_loop_is_a_component_of_one() {
        // The module graph has none (a module naming itself is no edge),
        // but the algorithm must not make more of one.
        assert!(cycles(2, &[(0, 0), (0, 1)]).is_empty());
    }

    #[test]
    fn shortest_cycles() {
        let adj = graph(5, &[(0, 1), (1, 2), (2, 0), (1, 0), (2, 3), (3, 4), (4, 2)]);
        let all = [0, 1, 2, 3, 4];
        assert_eq!(shortest_cycle(&adj, 0, &all), Some(vec![0, 1, 0]));
        assert_eq!(shortest_cycle(&adj, 2, &all), Some(vec![2, 0, 1, 2]));
        assert_eq!(shortest_cycle(&adj, 3, &all), Some(vec![3, 4, 2, 3]));
        // Outside the component it may not go.
        assert_eq!(shortest_cycle(&adj, 3, &[2, 3]), None);
        assert_eq!(shortest_cycle(&graph(2, &[(0, 1)]), 0, &[0, 1]), None);
    }
}
