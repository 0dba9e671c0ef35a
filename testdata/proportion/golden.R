# Golden values for fledge-judges' proportion tests (judges/src/proportion.rs), checked by
# judges/tests/proportion_golden.rs.
#
#   Rscript testdata/proportion/golden.R > testdata/proportion/golden.csv
#
# Made with R 4.2.2 (Debian r-base-core); base R only. Each case is a 2x2 table of counts,
# canary first: x1 events of n1 trials (canary), x2 of n2 (baseline).
#
# Columns:
#   fisher_p      fisher.test(rbind(c(x1, n1 - x1), c(x2, n2 - x2)))$p.value: two-sided,
#                 R's rule (sum of P(k) <= P(x1) * (1 + 1e-7)).
#   z_p           prop.test(c(x1, x2), c(n1, n2), correct = FALSE)$p.value: the two-proportion
#                 z-test (Pearson chi-squared, 1 df, no continuity correction). NA when R
#                 gives NaN (no events at all, or events everywhere).
#   z_stat        its X-squared statistic (= z^2).
#   rr_lo, rr_hi  the Koopman (1984) score interval for the rate ratio (x1/n1) / (x2/n2) at
#                 the confidence level `conf`. Base R has no implementation, so it is computed
#                 here independently of the Rust code: the constrained maximum-likelihood
#                 estimate of p2 under p1 = theta * p2 is found numerically (uniroot on the
#                 score equation, not the closed-form quadratic the Rust code uses), and the
#                 ends are the roots of U(theta) = qchisq(conf, 1), found with uniroot on
#                 log(theta). 0 and Inf are exact ends (no events on one side).

options(digits = 17)

cases <- read.table(header = TRUE, text = "
x1      n1       x2      n2       conf
8       9834     0       10043    0.98
0       10043    8       9834     0.98
4       9834     0       10043    0.98
0       100      0       100      0.95
0       10       5       10       0.95
5       10       0       10       0.98
1       1        0       1        0.95
3       7        1       9        0.95
2       20       2       20       0.95
10      1000     10      1000     0.98
50      1000     30      1000     0.98
442     128555   164     128555   0.98
1       100000   0       100000   0.98
100     100      90      100      0.95
12      5000     3       5000     0.98
7       12       3       15       0.90
500     10000    450     10000    0.98
5000    1000000  4800    1000000  0.98
0       5        0       3        0.95
1       2        1       2        0.95
30      60       20      60       0.99
2       50000    9       50000    0.98
25      25000    10      25000    0.98
9       10       1       10       0.95
60      1000000  30      1000000  0.98
1       3        0       1000     0.98
3       3        2       2        0.95
40      40       35      50       0.95
123456  10000000 120000  10000000 0.98
")

# The constrained MLE of p2 given p1 = theta * p2, from the score equation
#   (x1 + x2) / p2 - theta (n1 - x1) / (1 - theta p2) - (n2 - x2) / (1 - p2) = 0.
p2_tilde <- function(theta, x1, n1, x2, n2) {
  s <- x1 + x2
  upper <- min(1, 1 / theta)
  if (s == 0) return(0)
  f <- function(p2) s / p2 - theta * (n1 - x1) / (1 - theta * p2) - (n2 - x2) / (1 - p2)
  lo <- upper * 1e-300
  hi <- upper * (1 - 1e-16)
  if (f(hi) >= 0) return(upper)  # the likelihood rises all the way to the boundary
  uniroot(f, c(lo, hi), tol = 1e-300, maxiter = 5000)$root
}

# One term (x - n p)^2 / (n p (1 - p)), with the limit 0 when x = n p at a boundary.
term <- function(x, n, p) {
  num <- (x - n * p)^2
  den <- n * p * (1 - p)
  if (num == 0) 0 else num / den
}

score_u <- function(theta, x1, n1, x2, n2) {
  p2 <- p2_tilde(theta, x1, n1, x2, n2)
  p1 <- min(1, theta * p2)
  term(x1, n1, p1) + term(x2, n2, p2)
}

koopman <- function(x1, n1, x2, n2, conf) {
  crit <- qchisq(conf, 1)
  if (x1 + x2 == 0) return(c(0, Inf))
  g <- function(lt) score_u(exp(lt), x1, n1, x2, n2) - crit
  est <- if (x2 == 0) Inf else (x1 / n1) / (x2 / n2)
  lo <- 0
  hi <- Inf
  if (x1 > 0) {
    right <- if (is.finite(est)) log(est) else 50
    left <- right - 1
    while (g(left) < 0) left <- left - 1
    lo <- exp(uniroot(g, c(left, right), tol = 1e-14, maxiter = 5000)$root)
  }
  if (x2 > 0) {
    left <- if (est > 0) log(est) else -50
    right <- left + 1
    while (g(right) < 0) right <- right + 1
    hi <- exp(uniroot(g, c(left, right), tol = 1e-14, maxiter = 5000)$root)
  }
  c(lo, hi)
}

out <- data.frame()
for (i in seq_len(nrow(cases))) {
  with(cases[i, ], {
    tab <- rbind(c(x1, n1 - x1), c(x2, n2 - x2))
    fp <- fisher.test(tab)$p.value
    pt <- suppressWarnings(prop.test(c(x1, x2), c(n1, n2), correct = FALSE))
    zp <- if (is.nan(pt$p.value)) NA else pt$p.value
    zs <- if (is.nan(pt$statistic)) NA else unname(pt$statistic)
    ci <- koopman(x1, n1, x2, n2, conf)
    out <<- rbind(out, data.frame(x1 = x1, n1 = n1, x2 = x2, n2 = n2, conf = conf,
                                  fisher_p = fp, z_p = zp, z_stat = zs,
                                  rr_lo = ci[1], rr_hi = ci[2]))
  })
}
fmt <- function(v) ifelse(is.na(v), "NA", ifelse(is.infinite(v), "Inf", sprintf("%.17g", v)))
out[] <- lapply(out, fmt)
write.csv(out, stdout(), row.names = FALSE, quote = FALSE)
