select region, cohort_year, count(distinct subject), sum(visits), stddev(outcome_score), variance(visits), histogram(outcome_score, 0, 100, 10)
from program_outcomes -- comment
where active = true and enrolled between date '2021-01-01' and date '2021-12-31' and program <> 'it''s'
group by region, cohort_year purpose 'research';