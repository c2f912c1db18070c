//! Charts as SVG documents, drawn with `plotters`: line charts that overlay one curve per run,
//! and grouped bar charts.

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Width and height of every chart, in pixels.
pub const SIZE: (u32, u32) = (640, 400);

/// Distinct colours for runs, in order (a run keeps its colour in every chart).
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// The colour of run number `index`.
pub fn color(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// The colour of what several runs share (e.g. one untuned model).
pub const SHARED: RGBColor = RGBColor(120, 120, 120);

/// The most bars per category that still leave room to print their values.
pub const MAX_LABELLED_BARS: usize = 4;

/// One curve.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its name in the legend.
    pub label: String,
    /// Its colour.
    pub color: RGBColor,
    /// (x, y) points in order of x; non-finite ones are left out.
    pub points: Vec<(f64, f64)>,
}

/// A chart of curves against a common x axis.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// The caption.
    pub title: String,
    /// What x is.
    pub x_label: String,
    /// What y is.
    pub y_label: String,
    /// The curves.
    pub series: Vec<Series>,
}

/// One bar per category, for one run or stage.
#[derive(Debug, Clone)]
pub struct Bars {
    /// Its name in the legend.
    pub label: String,
    /// Its colour.
    pub color: RGBColor,
    /// Drawn lighter (e.g. the untuned model beside the tuned one).
    pub faded: bool,
    /// One value per category.
    pub values: Vec<f64>,
}

/// A chart of bars grouped by category.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// The caption.
    pub title: String,
    /// What the bars measure.
    pub y_label: String,
    /// The groups along x.
    pub categories: Vec<String>,
    /// The bars of each group, left to right.
    pub bars: Vec<Bars>,
}

impl LineChart {
    /// Draws the chart as an SVG document; `None` when no series has a finite point.
    pub fn svg(&self) -> anyhow::Result<Option<String>> {
        let points: Vec<Vec<(f64, f64)>> = self
            .series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect()
            })
            .collect();
        let all = points.iter().flatten();
        let Some((x_range, y_range)) = bounds(all.clone().map(|p| p.0), all.map(|p| p.1)) else {
            return Ok(None);
        };
        let y_range = y_range.start..above_legend(y_range, self.series.len());
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(plot_error)?;
            let mut chart = caption(&root, &self.title)
                .build_cartesian_2d(x_range, y_range)
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .y_label_formatter(&|v| format_number(*v))
                .x_label_formatter(&|v| format_number(*v))
                .light_line_style(RGBColor(238, 238, 238))
                .max_light_lines(2)
                .label_style(("sans-serif", 15))
                .axis_desc_style(("sans-serif", 16))
                .draw()
                .map_err(plot_error)?;
            for (series, points) in self.series.iter().zip(points) {
                let style = series.color.stroke_width(2);
                let single = points.len() == 1;
                let drawn = chart
                    .draw_series(LineSeries::new(points.iter().copied(), style))
                    .map_err(plot_error)?;
                drawn
                    .label(&series.label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                if single {
                    chart
                        .draw_series(points.iter().map(|&p| Circle::new(p, 4, style.filled())))
                        .map_err(plot_error)?;
                }
            }
            legend(&mut chart)?;
            root.present().map_err(plot_error)?;
        }
        Ok(Some(svg))
    }
}

impl BarChart {
    /// Draws the chart as an SVG document, each bar labelled with its value when there are at
    /// most [`MAX_LABELLED_BARS`] per category; `None` without bars or categories.
    pub fn svg(&self) -> anyhow::Result<Option<String>> {
        let groups = self.categories.len();
        if groups == 0 || self.bars.is_empty() {
            return Ok(None);
        }
        let top = self
            .bars
            .iter()
            .flat_map(|b| b.values.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let y_max = above_legend(
            0.0..if top > 0.0 { top * 1.1 } else { 1.0 },
            self.bars.len(),
        );
        // Group i spans x in [i * SLOT, (i + 1) * SLOT); its bars fill the middle 80 %.
        const SLOT: i64 = 1000;
        let n = groups as i64;
        let centres: Vec<i64> = (0..n).map(|i| i * SLOT + SLOT / 2).collect();
        let width = SLOT * 8 / 10 / self.bars.len() as i64;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(plot_error)?;
            let mut chart = caption(&root, &self.title)
                .build_cartesian_2d((0..n * SLOT).with_key_points(centres), 0.0..y_max)
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .y_desc(&self.y_label)
                .x_label_formatter(&|x| {
                    let i = (x / SLOT) as usize;
                    self.categories.get(i).cloned().unwrap_or_default()
                })
                .y_label_formatter(&|v| format_number(*v))
                .light_line_style(RGBColor(238, 238, 238))
                .max_light_lines(2)
                .label_style(("sans-serif", 15))
                .axis_desc_style(("sans-serif", 16))
                .draw()
                .map_err(plot_error)?;
            for (k, bars) in self.bars.iter().enumerate() {
                let base = bars.color;
                let fill = if bars.faded {
                    base.mix(0.4).filled()
                } else {
                    base.filled()
                };
                let left = |i: usize| i as i64 * SLOT + SLOT / 10 + k as i64 * width;
                let values = || bars.values.iter().enumerate().take(groups);
                let drawn = chart
                    .draw_series(values().map(|(i, &v)| {
                        Rectangle::new([(left(i), 0.0), (left(i) + width, v.max(0.0))], fill)
                    }))
                    .map_err(plot_error)?;
                drawn
                    .label(&bars.label)
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], fill));
                if self.bars.len() > MAX_LABELLED_BARS {
                    continue;
                }
                let text = ("sans-serif", 14)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom));
                chart
                    .draw_series(values().map(|(i, &v)| {
                        Text::new(
                            format!("{v:.3}"),
                            (left(i) + width / 2, v.max(0.0)),
                            text.clone(),
                        )
                    }))
                    .map_err(plot_error)?;
            }
            legend(&mut chart)?;
            root.present().map_err(plot_error)?;
        }
        Ok(Some(svg))
    }
}

/// A chart builder on `root` with the caption and axis areas every chart uses.
fn caption<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72);
    builder
}

fn legend<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(plot_error)
}

/// The top of a y axis on which `range` fills the plot below a legend of `entries` rows in its
/// upper right corner.
fn above_legend(range: std::ops::Range<f64>, entries: usize) -> f64 {
    // The plot area's height: the chart less caption, margins and the x label area.
    const PLOT_HEIGHT: f64 = SIZE.1 as f64 - 100.0;
    let legend = (entries as f64 * 20.0 + 16.0).min(PLOT_HEIGHT / 2.0) / PLOT_HEIGHT;
    range.start + (range.end - range.start) / (1.0 - legend)
}

/// The x and y ranges that hold every value with a margin; `None` without values.
fn bounds(
    xs: impl Iterator<Item = f64>,
    ys: impl Iterator<Item = f64>,
) -> Option<(std::ops::Range<f64>, std::ops::Range<f64>)> {
    let span = |values: Vec<f64>, margin: f64| {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            return None;
        }
        let pad = if hi > lo {
            (hi - lo) * margin
        } else {
            lo.abs().max(1.0) * 0.05
        };
        Some(lo - pad..hi + pad)
    };
    Some((span(xs.collect(), 0.0)?, span(ys.collect(), 0.08)?))
}

/// A tick label: plain for ordinary magnitudes, scientific for very small or large ones.
fn format_number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        let text = format!("{v:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: Vec<(f64, f64)>) -> LineChart {
        LineChart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series {
                label: "run".into(),
                color: color(0),
                points,
            }],
        }
    }

    #[test]
    fn charts_without_finite_points_are_not_drawn() {
        assert!(series(vec![]).svg().unwrap().is_none());
        assert!(series(vec![(1.0, f64::NAN)]).svg().unwrap().is_none());
        let one = series(vec![(1.0, f64::NAN), (2.0, 3.0)])
            .svg()
            .unwrap()
            .unwrap();
        assert_eq!(one.matches("<circle").count(), 1, "a lone point is marked");
    }

    #[test]
    fn the_legend_gets_room_above_the_data() {
        // Two legend rows take 56 of the 300 plot pixels: the data keeps the lower 244.
        let top = above_legend(0.0..1.0, 2);
        assert!((1.0 / top - 244.0 / 300.0).abs() < 1e-12, "{top}");
        assert_eq!(above_legend(2.0..2.0, 3), 2.0);
    }

    #[test]
    fn tick_labels() {
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(3e-4), "3.0e-4");
        assert_eq!(format_number(2.5), "2.5");
        assert_eq!(format_number(1234.4), "1234");
        assert_eq!(format_number(0.125), "0.125");
    }
}
