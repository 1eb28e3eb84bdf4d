//! The chart: one horizontal bar per throughput ratio (ours / peer), its
//! target as a black tick, green when met, red when not, grey when only
//! reported. SVG, drawn with `plotters`.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::Target;

const MET: RGBColor = RGBColor(46, 139, 87);
const MISSED: RGBColor = RGBColor(192, 57, 43);
const REPORTED: RGBColor = RGBColor(150, 150, 150);

/// The chart as SVG, or `None` when there is no ratio to draw (or drawing
/// failed, which only costs the chart).
pub fn draw(targets: &[Target]) -> Option<String> {
    // Throughput ratios, where more is better; latency ratios stay in the
    // table, where their direction is written next to them.
    let bars: Vec<(&Target, f64)> = targets
        .iter()
        .filter(|t| t.chart)
        .filter_map(|t| Some((t, t.value?)))
        .collect();
    if bars.is_empty() {
        return None;
    }
    let n = bars.len();
    // Up to 3x, so that one far-off peer (Node.js under a loaded machine)
    // does not squash the others; a longer bar is cut, its label says all.
    let largest = bars.iter().map(|(_, v)| *v).fold(1.0, f64::max);
    let threshold = bars
        .iter()
        .filter_map(|(t, _)| t.threshold())
        .fold(1.0, f64::max);
    let max = (largest * 1.15).min(3.0).max(threshold * 1.3);
    // The first target at the top: row 0 is the bottom of the chart.
    let row = |i: usize| n - 1 - i;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (1100, 90 + 26 * n as u32)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "graceful-server / peer, throughput (medians; tick: target; green: met, red: missed, grey: no target)",
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(470)
            .build_cartesian_2d(0.0..max, (0..n - 1).into_segmented())
            .ok()?;
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(r) if *r < n => bars[n - 1 - r].0.label.clone(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&label)
            .x_label_formatter(&|x| format!("{x:.1}x"))
            .light_line_style(WHITE)
            .label_style(("sans-serif", 12))
            .draw()
            .ok()?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (t, v))| {
                let colour = match t.met() {
                    Some(true) => MET,
                    Some(false) => MISSED,
                    None => REPORTED,
                };
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(row(i))),
                        (v.min(max), SegmentValue::Exact(row(i) + 1)),
                    ],
                    colour.filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                bar
            }))
            .ok()?;
        chart
            .draw_series(bars.iter().enumerate().filter_map(|(i, (t, _))| {
                let x = t.threshold()?;
                Some(PathElement::new(
                    vec![
                        (x, SegmentValue::Exact(row(i))),
                        (x, SegmentValue::Exact(row(i) + 1)),
                    ],
                    BLACK.stroke_width(3),
                ))
            }))
            .ok()?;
        let text = TextStyle::from(("sans-serif", 12)).pos(Pos::new(HPos::Left, VPos::Center));
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (t, v))| {
                let x = v.max(t.threshold().unwrap_or(0.0)).min(max * 0.93) + max * 0.01;
                Text::new(
                    t.shown_value(),
                    (x, SegmentValue::CenterOf(row(i))),
                    text.clone(),
                )
            }))
            .ok()?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Last)],
                BLACK.mix(0.3).stroke_width(1),
            )))
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Goal, Unit};

    fn target(label: &str, value: f64, goal: Goal) -> Target {
        Target {
            label: label.into(),
            ours: None,
            peer: None,
            value: Some(value),
            unit: Unit::Ratio,
            goal,
            chart: !matches!(goal, Goal::AtMost(_)),
        }
    }

    #[test]
    fn draws_one_bar_per_ratio_where_more_is_better() {
        let targets = [
            target("met", 1.02, Goal::AtLeast(0.95)),
            target("missed", 0.5, Goal::AtLeast(1.5)),
            target("reported, far off", 9.3, Goal::None),
            target("a p99 ratio", 1.2, Goal::AtMost(2.0)),
        ];
        let svg = draw(&targets).expect("draws");
        std::fs::write(std::env::temp_dir().join("compare-chart-test.svg"), &svg).expect("writes");
        assert!(svg.contains("missed"));
        assert!(!svg.contains("a p99 ratio"));
        assert!(svg.contains("9.30x"));
    }
}
